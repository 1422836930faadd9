package luafilters

import (
	"context"
	"crypto"
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// sandbox is one Lua state prepared for a snippet, plus the Go state of the Envoy mock.
type sandbox struct {
	L      *lua.LState
	budget *budget
	res    *DryRunResult
	// violation is the first API misuse. It is kept on the Go side because the snippet could
	// catch the Lua error with pcall(); a caught violation still fails validation.
	violation *ValidationError
	metas     map[*class]*lua.LTable
	// flow and scope describe the entry point currently running (nil while the chunk loads).
	flow   *flow
	scope  *scope
	stream *streamState
	// keys are the public keys importPublicKey() accepted, by DER bytes.
	keys map[string]crypto.PublicKey
	// allocLeft is what remains of Limits.MaxAllocBytes (see charge).
	allocLeft, allocMax int64
	// changesDropped, callsDropped: a note was already added about records beyond the bounds.
	changesDropped, callsDropped bool
	// logBytes counts logged bytes against maxLogBytes.
	logBytes int
	// hints explain API results that are correct Envoy behaviour but often surprise (a nil
	// body() or get("host")); they are appended to a runtime error that may follow from them.
	hints []string
}

// Lua state sizes. The call stack bounds recursion depth (deeper recursion is a "stack
// overflow" runtime error); the registry is the value stack, bounded so that unpack() of a huge
// table fails instead of growing without limit.
const (
	callStackSize   = 200
	registrySize    = 1024 * 4
	registryMaxSize = 1024 * 64
	// registryGrowStep is large because each growth copies the whole registry: gopher-lua's
	// default step (32) makes unpack({}, 1, 1e7) spend seconds growing it before it overflows.
	registryGrowStep = 1024 * 4
)

func newSandbox(ctx context.Context, lim Limits, res *DryRunResult, stream *streamState) *sandbox {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:     true,
		CallStackSize:    callStackSize,
		RegistrySize:     registrySize,
		RegistryMaxSize:  registryMaxSize,
		RegistryGrowStep: registryGrowStep,
	})
	s := &sandbox{
		L:         L,
		res:       res,
		metas:     map[*class]*lua.LTable{},
		stream:    stream,
		keys:      map[string]crypto.PublicKey{},
		allocLeft: lim.MaxAllocBytes,
		allocMax:  lim.MaxAllocBytes,
	}
	s.openLibs()
	s.budget = newBudget(ctx, L, lim.MaxInstructions)
	L.SetContext(s.budget)
	return s
}

func (s *sandbox) close() { s.L.Close() }

// openLibs opens only what a filter needs and can run safely: base, table, string and math
// (plus LuaJIT's bit library, which Envoy's runtime has). There is no os, io, package/require,
// debug or coroutine library; the base functions that load code or reach outside are removed.
func (s *sandbox) openLibs() {
	L := s.L
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	g := L.G.Global
	for _, name := range []string{
		"dofile", "loadfile", "load", "loadstring", "require", "module", "collectgarbage",
		"getfenv", "setfenv", "newproxy", "_printregs", "_GOPHER_LUA_VERSION",
	} {
		g.RawSetString(name, lua.LNil)
	}
	s.hardenStrings()
	s.hardenMath()
	g.RawSetString("pairs", s.pairsWithMetamethod(g.RawGetString("pairs")))
	g.RawSetString("print", L.NewFunction(s.print))
	g.RawSetString(concatFunc, L.NewFunction(s.concat))
	g.RawSetString("bit", newBitLib(L))
	resolution := L.NewTable()
	resolution.RawSetString("MILLISECOND", lua.LNumber(resolutionMillisecond))
	resolution.RawSetString("MICROSECOND", lua.LNumber(resolutionMicrosecond))
	g.RawSetString("EnvoyTimestampResolution", resolution)
	s.installForeignGlobalHints()
}

// pairsWithMetamethod makes pairs() honour __pairs, as LuaJIT does in Envoy (5.2 compatibility);
// gopher-lua's pairs() ignores it. Envoy's headers and metadata rely on it.
func (s *sandbox) pairsWithMetamethod(orig lua.LValue) *lua.LFunction {
	return s.L.NewFunction(func(L *lua.LState) int {
		v := L.Get(1)
		fn := L.GetMetaField(v, "__pairs")
		if fn == lua.LNil {
			fn = orig
		}
		L.Push(fn)
		L.Push(v)
		L.Call(1, 3)
		return 3
	})
}

// Bounds on what print() and log*() may accumulate in a DryRunResult.
const (
	maxLogLines = 200
	maxLogBytes = 64 << 10
)

func (s *sandbox) print(L *lua.LState) int {
	// Joined only up to what the log can still hold.
	var b strings.Builder
	for i := 1; i <= L.GetTop() && b.Len() <= maxLogBytes; i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(L.ToStringMeta(L.Get(i)).String())
	}
	s.log("print", b.String())
	return 0
}

// log appends a LogLine, truncating once the bounds are reached so a chatty loop cannot bloat
// the admin API's answer.
func (s *sandbox) log(level, msg string) {
	if len(s.res.Logs) >= maxLogLines || s.logBytes >= maxLogBytes {
		return
	}
	if room := maxLogBytes - s.logBytes; len(msg) > room {
		msg = msg[:room] + "...(truncated)"
	}
	s.logBytes += len(msg)
	s.res.Logs = append(s.res.Logs, LogLine{Level: level, Message: msg, Line: currentLine(s.L)})
	if len(s.res.Logs) == maxLogLines || s.logBytes >= maxLogBytes {
		s.res.Logs = append(s.res.Logs, LogLine{Level: "warn", Message: "dynup: further log lines dropped"})
	}
}

// hint remembers an explanation for a later runtime error (at most a few, first ones win).
func (s *sandbox) hint(format string, args ...any) {
	if len(s.hints) < 3 {
		s.hints = append(s.hints, fmt.Sprintf("line %d: ", currentLine(s.L))+fmt.Sprintf(format, args...))
	}
}

// apiErrorf records an API violation, stops the script and raises the error in Lua.
func (s *sandbox) apiErrorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.violation == nil {
		s.violation = &ValidationError{Line: currentLine(s.L), Phase: PhaseAPI, Msg: msg}
	}
	s.budget.halt(errStopped)
	s.L.RaiseError("%s", msg)
}
