package luafilters

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// hardenStrings patches the string library in place, so that method calls on strings
// (("x"):rep(n)), which go through the same table, are covered too. Every function that builds a
// string larger than its input charges Limits.MaxAllocBytes first; string.dump goes.
func (s *sandbox) hardenStrings() {
	L := s.L
	lib := L.G.Global.RawGetString(lua.StringLibName).(*lua.LTable)
	lib.RawSetString("dump", lua.LNil)
	lib.RawSetString("rep", L.NewFunction(s.stringRep))
	lib.RawSetString("find", L.NewFunction(s.strFind))
	lib.RawSetString("match", L.NewFunction(s.strMatch))
	gmatch := L.NewFunction(s.strGmatch)
	lib.RawSetString("gmatch", gmatch)
	lib.RawSetString("gfind", gmatch)
	lib.RawSetString("gsub", L.NewFunction(s.strGsub))
	format := lib.RawGetString("format")
	lib.RawSetString("format", L.NewFunction(func(L *lua.LState) int {
		f := L.CheckString(1)
		if err := checkFormat(f); err != "" {
			L.RaiseError("bad argument #1 to 'format' (%s)", err)
		}
		// Each conversion prints one argument padded to at most 99 characters.
		estimate := int64(len(f))
		for i := 2; i <= L.GetTop(); i++ {
			estimate += int64(len(lua.LVAsString(L.Get(i)))) + 128
		}
		s.charge(estimate)
		return s.callOriginal(L, format)
	}))
	// upper, lower and reverse copy their argument: cheap, but storing the copies in a loop
	// would multiply memory without costing instructions.
	for _, name := range []string{"upper", "lower", "reverse"} {
		orig := lib.RawGetString(name)
		lib.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			s.charge(int64(len(L.CheckString(1))))
			return s.callOriginal(L, orig)
		}))
	}
	tab := L.G.Global.RawGetString(lua.TabLibName).(*lua.LTable)
	tableConcat := tab.RawGetString("concat")
	tab.RawSetString("concat", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		sep := int64(len(L.OptString(2, "")))
		from, to := L.OptInt(3, 1), L.OptInt(4, t.Len())
		var total int64
		for i := from; i <= to; i++ {
			v := t.RawGetInt(i)
			if !isStringy(v) {
				break // the original reports the bad element
			}
			total += int64(len(lua.LVAsString(v))) + sep
		}
		s.charge(total)
		return s.callOriginal(L, tableConcat)
	}))
}

// callOriginal calls a library function with the current arguments and returns its one result.
func (s *sandbox) callOriginal(L *lua.LState, fn lua.LValue) int {
	top := L.GetTop()
	L.Push(fn)
	for i := 1; i <= top; i++ {
		L.Push(L.Get(i))
	}
	L.Call(top, 1)
	return 1
}

func (s *sandbox) stringRep(L *lua.LState) int {
	str := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || str == "" {
		L.Push(lua.LString(""))
		return 1
	}
	s.charge(int64(n) * int64(len(str)))
	L.Push(lua.LString(strings.Repeat(str, n)))
	return 1
}

// checkFormat applies Lua 5.1's format rules: widths and precisions have at most two digits and
// conversions are Lua's. gopher-lua hands the format to Go's fmt, where "%999999s" would pad to
// a megabyte and "%[1]s" would repeat an argument without limit.
func checkFormat(f string) string {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			continue
		}
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		digits := 0
		for i < len(f) && f[i] >= '0' && f[i] <= '9' {
			i++
			digits++
		}
		if i < len(f) && f[i] == '.' {
			i++
			precision := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				precision++
			}
			digits = max(digits, precision)
		}
		if digits > 2 {
			return "invalid format (width or precision too long)"
		}
		if i >= len(f) || strings.IndexByte("cdiouxXeEfgGqs", f[i]) < 0 {
			return "invalid conversion to 'format'"
		}
	}
	return ""
}
