package luafilters

import (
	lua "github.com/yuin/gopher-lua"
)

// Lua patterns are backtracking matchers: string.find(s, ".-.-b") on a long s runs in O(n^3),
// inside a single Go call where gopher-lua never checks its context. This is a port of Lua 5.1's
// matcher (lstrlib.c) that spends the run's instruction budget as it goes, so a pathological
// pattern ends as a PhaseLimit error instead of hanging the control plane. (Envoy's LuaJIT
// would hang its worker thread on the same pattern; reporting it is the point.)

const (
	maxCaptures   = 32  // LUA_MAXCAPTURES
	maxMatchDepth = 200 // recursion guard, as Lua 5.2's MAXCCALLS
	capUnfinished = -1
	capPosition   = -2
	patSpecials   = "^$*+?.([%-"
)

type matcher struct {
	L     *lua.LState
	spend func(n int64) // charges matching steps to the run's budget
	src   string
	pat   string
	level int
	depth int
	steps int64
	capt  [maxCaptures]struct{ init, len int }
}

// at returns src[i], or 0 past the end (C strings end with a NUL byte the matcher relies on).
func (m *matcher) at(i int) byte {
	if i < len(m.src) {
		return m.src[i]
	}
	return 0
}

func (m *matcher) pc(p int) byte {
	if p < len(m.pat) {
		return m.pat[p]
	}
	return 0
}

// step counts one unit of matching work, settling with the budget every 256 steps.
func (m *matcher) step() {
	m.steps++
	if m.steps&255 == 0 {
		m.spend(256)
	}
}

func (m *matcher) fail(msg string) { m.L.RaiseError("%s", msg) }

func (m *matcher) classEnd(p int) int {
	c := m.pc(p)
	p++
	switch c {
	case '%':
		if p >= len(m.pat) {
			m.fail("malformed pattern (ends with '%')")
		}
		return p + 1
	case '[':
		if m.pc(p) == '^' {
			p++
		}
		for {
			if p >= len(m.pat) {
				m.fail("malformed pattern (missing ']')")
			}
			c := m.pat[p]
			p++
			if c == '%' && p < len(m.pat) {
				p++
			}
			if m.pc(p) == ']' {
				return p + 1
			}
		}
	}
	return p
}

func matchClass(c, cl byte) bool {
	var res bool
	lower := cl | 0x20
	switch lower {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = c < 32 || c == 127
	case 'd':
		res = c >= '0' && c <= '9'
	case 'l':
		res = c >= 'a' && c <= 'z'
	case 'p':
		res = c > 32 && c < 127 && !isAlpha(c) && !(c >= '0' && c <= '9')
	case 's':
		res = c == ' ' || (c >= '\t' && c <= '\r')
	case 'u':
		res = c >= 'A' && c <= 'Z'
	case 'w':
		res = isAlpha(c) || (c >= '0' && c <= '9')
	case 'x':
		res = (c >= '0' && c <= '9') || ((c|0x20) >= 'a' && (c|0x20) <= 'f')
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if cl >= 'a' && cl <= 'z' {
		return res
	}
	return !res
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// matchBracket tests c against the class [..] spanning pat[p:ec+1] (ec is the closing ']').
func (m *matcher) matchBracket(c byte, p, ec int) bool {
	sig := true
	if m.pc(p+1) == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case m.pat[p] == '%':
			p++
			if matchClass(c, m.pc(p)) {
				return sig
			}
		case m.pc(p+1) == '-' && p+2 < ec:
			p += 2
			if m.pat[p-2] <= c && c <= m.pat[p] {
				return sig
			}
		case m.pat[p] == c:
			return sig
		}
	}
	return !sig
}

func (m *matcher) singleMatch(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pc(p) {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pc(p+1))
	case '[':
		return m.matchBracket(c, p, ep-1)
	}
	return m.pc(p) == c
}

// match returns the end of the match of pat[p:] at src[s:], or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		m.fail("pattern too complex")
	}
	defer func() { m.depth-- }()
	for {
		m.step()
		switch m.pc(p) {
		case '(':
			if m.pc(p+1) == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case 0:
			if p >= len(m.pat) {
				return s
			}
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			switch next := m.pc(p + 1); {
			case next == 'b':
				if s = m.matchBalance(s, p+2); s < 0 {
					return -1
				}
				p += 4
				continue
			case next == 'f':
				p += 2
				if m.pc(p) != '[' {
					m.fail("missing '[' after '%f' in pattern")
				}
				ep := m.classEnd(p)
				var prev byte
				if s > 0 {
					prev = m.src[s-1]
				}
				if m.matchBracket(prev, p, ep-1) || !m.matchBracket(m.at(s), p, ep-1) {
					return -1
				}
				p = ep
				continue
			case next >= '0' && next <= '9':
				if s = m.matchCapture(s, next); s < 0 {
					return -1
				}
				p += 2
				continue
			}
		}
		// A single-character class, possibly followed by a repetition suffix.
		ep := m.classEnd(p)
		ok := m.singleMatch(s, p, ep)
		switch m.pc(ep) {
		case '?':
			if ok {
				if res := m.match(s+1, ep+1); res >= 0 {
					return res
				}
			}
			p = ep + 1
			continue
		case '*':
			return m.maxExpand(s, p, ep)
		case '+':
			if !ok {
				return -1
			}
			return m.maxExpand(s+1, p, ep)
		case '-':
			return m.minExpand(s, p, ep)
		}
		if !ok {
			return -1
		}
		s, p = s+1, ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.singleMatch(s+i, p, ep) {
		m.step()
		i++
	}
	for ; i >= 0; i-- {
		if res := m.match(s+i, ep+1); res >= 0 {
			return res
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if res := m.match(s, ep+1); res >= 0 {
			return res
		}
		if !m.singleMatch(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		m.fail("unbalanced pattern")
	}
	if m.at(s) != m.pat[p] || s >= len(m.src) {
		return -1
	}
	open, closing, depth := m.pat[p], m.pat[p+1], 1
	for s++; s < len(m.src); s++ {
		m.step()
		switch m.src[s] {
		case closing:
			if depth--; depth == 0 {
				return s + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		m.fail("too many captures")
	}
	m.capt[m.level].init, m.capt[m.level].len = s, what
	m.level++
	res := m.match(s, p)
	if res < 0 {
		m.level--
	}
	return res
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capt[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		m.fail("invalid pattern capture")
	}
	m.capt[l].len = s - m.capt[l].init
	res := m.match(s, p)
	if res < 0 {
		m.capt[l].len = capUnfinished
	}
	return res
}

func (m *matcher) matchCapture(s int, digit byte) int {
	l := int(digit) - '1'
	if l < 0 || l >= m.level || m.capt[l].len == capUnfinished {
		m.fail("invalid capture index")
	}
	if m.capt[l].len == capPosition {
		return -1 // a position capture has no text to repeat
	}
	c := m.src[m.capt[l].init : m.capt[l].init+m.capt[l].len]
	if len(m.src)-s >= len(c) && m.src[s:s+len(c)] == c {
		return s + len(c)
	}
	return -1
}

// capture returns capture i (0-based) of the match src[s:e], as Lua pushes it.
func (m *matcher) capture(i, s, e int) lua.LValue {
	if i >= m.level {
		if i != 0 {
			m.fail("invalid capture index")
		}
		return lua.LString(m.src[s:e])
	}
	switch c := m.capt[i]; c.len {
	case capUnfinished:
		m.fail("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(m.src[m.capt[i].init : m.capt[i].init+m.capt[i].len])
}

// pushCaptures pushes all captures (or the whole match when there are none) and counts them.
func (m *matcher) pushCaptures(s, e int, wholeIfNone bool) int {
	n := m.level
	if n == 0 && wholeIfNone {
		n = 1
	}
	for i := 0; i < n; i++ {
		m.L.Push(m.capture(i, s, e))
	}
	return n
}
