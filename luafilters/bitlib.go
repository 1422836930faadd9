package luafilters

import (
	"math"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// newBitLib provides LuaJIT's "bit" module (BitOp), which Envoy's LuaJIT runtime has and
// gopher-lua lacks, so snippets doing bit arithmetic validate. Results are signed 32-bit
// numbers, as in LuaJIT.
func newBitLib(L *lua.LState) *lua.LTable {
	fold := func(op func(a, b int32) int32) lua.LGFunction {
		return func(L *lua.LState) int {
			acc := toBit(L.CheckNumber(1))
			for i := 2; i <= L.GetTop(); i++ {
				acc = op(acc, toBit(L.CheckNumber(i)))
			}
			L.Push(lua.LNumber(acc))
			return 1
		}
	}
	shift := func(op func(x uint32, n uint) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			x := uint32(toBit(L.CheckNumber(1)))
			n := uint(toBit(L.CheckNumber(2)) & 31)
			L.Push(lua.LNumber(int32(op(x, n))))
			return 1
		}
	}
	return L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"tobit":  func(L *lua.LState) int { L.Push(lua.LNumber(toBit(L.CheckNumber(1)))); return 1 },
		"bnot":   func(L *lua.LState) int { L.Push(lua.LNumber(^toBit(L.CheckNumber(1)))); return 1 },
		"band":   fold(func(a, b int32) int32 { return a & b }),
		"bor":    fold(func(a, b int32) int32 { return a | b }),
		"bxor":   fold(func(a, b int32) int32 { return a ^ b }),
		"lshift": shift(func(x uint32, n uint) uint32 { return x << n }),
		"rshift": shift(func(x uint32, n uint) uint32 { return x >> n }),
		"arshift": shift(func(x uint32, n uint) uint32 {
			return uint32(int32(x) >> n)
		}),
		"rol": shift(func(x uint32, n uint) uint32 { return x<<n | x>>((32-n)&31) }),
		"ror": shift(func(x uint32, n uint) uint32 { return x>>n | x<<((32-n)&31) }),
		"bswap": func(L *lua.LState) int {
			x := uint32(toBit(L.CheckNumber(1)))
			L.Push(lua.LNumber(int32(x>>24 | x>>8&0xff00 | x<<8&0xff0000 | x<<24)))
			return 1
		},
		"tohex": func(L *lua.LState) int {
			x := uint32(toBit(L.CheckNumber(1)))
			n := int(toBit(L.OptNumber(2, 8)))
			upper := n < 0
			if upper {
				n = -n
			}
			n = min(max(n, 1), 8)
			digits := "0123456789abcdef"
			if upper {
				digits = strings.ToUpper(digits)
			}
			buf := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				buf[i] = digits[x&15]
				x >>= 4
			}
			L.Push(lua.LString(buf))
			return 1
		},
	})
}

// toBit normalises a number to a signed 32-bit integer the way LuaJIT's bit.tobit does: round to
// nearest, then wrap modulo 2^32.
func toBit(n lua.LNumber) int32 {
	f := math.RoundToEven(float64(n))
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return int32(uint32(int64(math.Mod(f, 1<<32))))
}
