package translate

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/dynup/dynup/registry"
)

// runChunk executes a host's combined program in a Lua 5.1 interpreter (gopher-lua: loadstring, setfenv
// and pcall as in Envoy's LuaJIT) and calls envoy_on_request with a handle that records logErr. It returns
// what the snippets appended to the global "calls", the logged errors and the error the entry raised.
func runChunk(t *testing.T, chunk string) (calls, logged []string, raised string) {
	t.Helper()
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("calls", L.NewTable())
	if err := L.DoString(chunk); err != nil {
		t.Fatalf("the combined program does not load: %v\n%s", err, chunk)
	}
	handle := L.NewTable()
	handle.RawSetString("logErr", L.NewFunction(func(L *lua.LState) int {
		logged = append(logged, L.CheckString(2))
		return 0
	}))
	entry := L.GetGlobal("envoy_on_request")
	if err := L.CallByParam(lua.P{Fn: entry, NRet: 0, Protect: true}, handle); err != nil {
		raised = err.(*lua.ApiError).Object.String()
	}
	L.GetGlobal("calls").(*lua.LTable).ForEach(func(_, v lua.LValue) { calls = append(calls, v.String()) })
	return calls, logged, raised
}

func snippet(name, src string) registry.ActiveSnippet {
	return registry.ActiveSnippet{Name: name, Version: 1, Source: src, EntryPoints: []string{"envoy_on_request"}}
}

// Snippets run in order, each with its own globals; one that fails to load or raises is reported under
// its name and line, and the others still run; the first error reaches Envoy.
func TestCombinedChunkIsolatesSnippets(t *testing.T) {
	chunk := luaChunk("web", []registry.ActiveSnippet{
		snippet("first", `x = "first's"
function envoy_on_request(h) table.insert(calls, "first saw " .. x) end`),
		snippet("broken_load", "error('boom at load')\nfunction envoy_on_request(h) table.insert(calls, 'never') end"),
		snippet("raises", "function envoy_on_request(h)\n  table.insert(calls, 'raises')\n  local t = nil\n  return t.field\nend"),
		snippet("last", `function envoy_on_request(h) table.insert(calls, "last saw " .. tostring(x)) end -- ]] ]=]`),
	})
	calls, logged, raised := runChunk(t, chunk)
	if want := []string{"first saw first's", "raises", "last saw nil"}; !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	// LuaJIT shows chunk name "=x" as "x"; gopher-lua keeps the "=".
	if !regexp.MustCompile(`^dynup snippet broken_load@v1: did not load: =?broken_load@v1:1: boom at load`).MatchString(raised) {
		t.Fatalf("raised %q", raised)
	}
	if len(logged) != 1 || !regexp.MustCompile(`^dynup snippet raises@v1: =?raises@v1:4:`).MatchString(logged[0]) {
		t.Fatalf("logged %q", logged)
	}
	if strings.Contains(chunk, "function envoy_on_response") {
		t.Fatal("envoy_on_response defined although no snippet has it")
	}
}

func TestLongBracketLevel(t *testing.T) {
	for src, want := range map[string]string{"a": "", "t[t[1]]": "=", "]]]=]": "==", "x]=": ""} {
		if got := longBracketLevel(src); got != want {
			t.Errorf("%q: level %q, want %q", src, got, want)
		}
	}
}
