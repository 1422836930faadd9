package luafilters

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// string.find, match, gmatch and gsub on top of the budgeted matcher (pattern.go), following
// Lua 5.1. gsub also builds its result in one pass, charging Limits.MaxAllocBytes piece by piece
// (gopher-lua's copies the whole subject once per match).

func (s *sandbox) newMatcher(src, pat string) *matcher {
	return &matcher{L: s.L, spend: s.budget.spend, src: src, pat: pat}
}

// startIndex converts Lua's 1-based, possibly negative init argument to a 0-based offset.
func startIndex(init, n int) int {
	if init < 0 {
		init += n + 1
	}
	if init < 1 {
		init = 1
	}
	return min(init-1, n)
}

func (s *sandbox) strFind(L *lua.LState) int  { return s.findAux(L, true) }
func (s *sandbox) strMatch(L *lua.LState) int { return s.findAux(L, false) }

func (s *sandbox) findAux(L *lua.LState, find bool) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	init := startIndex(L.OptInt(3, 1), len(src))
	if find && (L.ToBool(4) || !strings.ContainsAny(pat, patSpecials)) {
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := s.newMatcher(src, pat)
	for start := init; start <= len(src); start++ {
		m.level = 0
		if end := m.match(start, 0); end >= 0 {
			if find {
				L.Push(lua.LNumber(start + 1))
				L.Push(lua.LNumber(end))
				return 2 + m.pushCaptures(start, end, false)
			}
			return m.pushCaptures(start, end, true)
		}
		if anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

// strGmatch returns an iterator over successive matches. As in Lua 5.1, '^' is not an anchor.
func (s *sandbox) strGmatch(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		m := s.newMatcher(src, pat)
		for ; pos <= len(src); pos++ {
			m.level = 0
			if end := m.match(pos, 0); end >= 0 {
				start := pos
				pos = end
				if end == start {
					pos++ // an empty match moves on by one
				}
				return m.pushCaptures(start, end, true)
			}
		}
		return 0
	}))
	return 1
}

func (s *sandbox) strGsub(L *lua.LState) int {
	src, pat := L.CheckString(1), L.CheckString(2)
	repl := L.Get(3)
	switch repl.(type) {
	case lua.LString, lua.LNumber, *lua.LTable, *lua.LFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	anchor := strings.HasPrefix(pat, "^")
	if anchor {
		pat = pat[1:]
	}
	m := s.newMatcher(src, pat)
	var b strings.Builder
	write := func(piece string) {
		s.charge(int64(len(piece)))
		b.WriteString(piece)
	}
	pos, n := 0, 0
	for n < maxN {
		m.level = 0
		end := m.match(pos, 0)
		if end >= 0 {
			n++
			s.gsubValue(m, repl, pos, end, write)
		}
		if end > pos {
			pos = end
		} else if pos < len(src) {
			write(src[pos : pos+1])
			pos++
		} else {
			break
		}
		if anchor {
			break
		}
	}
	write(src[pos:])
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// gsubValue writes the replacement for the match src[start:end].
func (s *sandbox) gsubValue(m *matcher, repl lua.LValue, start, end int, write func(string)) {
	L := m.L
	var v lua.LValue
	switch r := repl.(type) {
	case lua.LString, lua.LNumber:
		// "%d" inserts capture d, "%0" the whole match, "%x" any other x.
		text := lua.LVAsString(r)
		for text != "" {
			i := strings.IndexByte(text, '%')
			if i < 0 || i+1 == len(text) {
				write(text)
				return
			}
			write(text[:i])
			switch d := text[i+1]; {
			case d == '0':
				write(m.src[start:end])
			case d >= '1' && d <= '9':
				write(lua.LVAsString(m.capture(int(d-'1'), start, end)))
			default:
				write(text[i+1 : i+2])
			}
			text = text[i+2:]
		}
		return
	case *lua.LTable:
		v = L.GetTable(r, m.capture(0, start, end))
	case *lua.LFunction:
		L.Push(r)
		L.Call(m.pushCaptures(start, end, true), 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch {
	case !lua.LVAsBool(v):
		write(m.src[start:end]) // nil or false keeps the original text
	case isStringy(v):
		write(lua.LVAsString(v))
	default:
		L.RaiseError("invalid replacement value (a %s)", v.Type())
	}
}
