package luafilters

import (
	"math/rand/v2"

	lua "github.com/yuin/gopher-lua"
)

// hardenMath replaces math.random and math.randomseed. gopher-lua's versions panic on an empty
// interval (math.random(0)) and seed the process-wide generator; these raise Lua 5.1's errors
// and use a generator private to the sandbox.
func (s *sandbox) hardenMath() {
	L := s.L
	lib := L.G.Global.RawGetString(lua.MathLibName).(*lua.LTable)
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	lib.RawSetString("random", L.NewFunction(func(L *lua.LState) int {
		lo, hi := int64(1), int64(0)
		switch L.GetTop() {
		case 0:
			L.Push(lua.LNumber(rng.Float64()))
			return 1
		case 1:
			hi = bounded(L, 1)
		default:
			lo, hi = bounded(L, 1), bounded(L, 2)
		}
		if lo > hi {
			L.ArgError(L.GetTop(), "interval is empty")
		}
		L.Push(lua.LNumber(lo + rng.Int64N(hi-lo+1)))
		return 1
	}))
	lib.RawSetString("randomseed", L.NewFunction(func(L *lua.LState) int {
		seed := uint64(int64(L.CheckNumber(1)))
		rng = rand.New(rand.NewPCG(seed, seed))
		return 0
	}))
}

// bounded reads an integer argument clamped to ±2^53 (where floats stop being exact), so that
// the interval size cannot overflow.
func bounded(L *lua.LState, n int) int64 {
	f := float64(L.CheckNumber(n))
	if f != f {
		L.ArgError(n, "number expected, got nan")
	}
	const limit = 1 << 53
	return int64(min(max(f, -limit), limit))
}
