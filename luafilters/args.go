package luafilters

import (
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Argument checks for API methods. Envoy rejects wrong argument types with a script error; the
// mock does the same but as an API error that names the method, the argument (counted from 1,
// the receiver excluded, as users read the call) and the line. n is that user-facing number.

func (s *sandbox) argAt(n int) lua.LValue { return s.L.Get(n + 1) }

func (s *sandbox) present(n int) bool { return s.L.GetTop() >= n+1 }

func (s *sandbox) typeName(n int) string {
	if !s.present(n) {
		return "no value"
	}
	return s.argAt(n).Type().String()
}

func (s *sandbox) badArg(fn string, n int, want string) {
	s.apiErrorf("bad argument #%d to %s() (%s expected, got %s)", n, fn, want, s.typeName(n))
}

// argString accepts a string or a number (Lua's luaL_checkstring does the same coercion).
func (s *sandbox) argString(fn string, n int) string {
	switch v := s.argAt(n).(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return v.String()
	}
	s.badArg(fn, n, "string")
	return ""
}

// optString is argString for an argument that may be absent or nil.
func (s *sandbox) optString(fn string, n int) (string, bool) {
	if s.argAt(n) == lua.LNil {
		return "", false
	}
	return s.argString(fn, n), true
}

// argNumber accepts a number or a numeric string.
func (s *sandbox) argNumber(fn string, n int) float64 {
	switch v := s.argAt(n).(type) {
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		if f, err := strconv.ParseFloat(strings.TrimSpace(string(v)), 64); err == nil {
			return f
		}
	}
	s.badArg(fn, n, "number")
	return 0
}

// argInt is argNumber truncated toward zero like luaL_checkint, refusing values that do not fit.
func (s *sandbox) argInt(fn string, n int) int64 {
	f := s.argNumber(fn, n)
	if math.IsNaN(f) || f > math.MaxInt32 || f < math.MinInt32 {
		s.apiErrorf("bad argument #%d to %s() (number out of range)", n, fn)
	}
	return int64(f)
}

func (s *sandbox) argTable(fn string, n int) *lua.LTable {
	if t, ok := s.argAt(n).(*lua.LTable); ok {
		return t
	}
	s.badArg(fn, n, "table")
	return nil
}

// optBool reads an optional boolean; Envoy type-checks it when present.
func (s *sandbox) optBool(fn string, n int) bool {
	if !s.present(n) {
		return false
	}
	b, ok := s.argAt(n).(lua.LBool)
	if !ok {
		s.badArg(fn, n, "boolean")
	}
	return bool(b)
}
