package luafilters

import (
	lua "github.com/yuin/gopher-lua"
)

// foreignGlobals are names snippets reach for that do not exist in dynup's sandbox, with the
// advice shown instead of Lua's bare "attempt to index a nil value". Some come from other Lua
// platforms (OpenResty's ngx), the rest are standard libraries the sandbox leaves out on
// purpose: Envoy would run them, but a filter distributed by dynup must not touch the proxy host.
var foreignGlobals = map[string]string{
	"ngx": `ngx.* is OpenResty's API; Envoy's is request_handle:... ` +
		`(ngx.exit(403) -> request_handle:respond({[":status"] = "403"}, "forbidden"); ` +
		`ngx.var.host / ngx.req.get_headers() -> request_handle:headers():get(":authority") / :get(name); ` +
		`ngx.log -> request_handle:logInfo(msg))`,
	"os":             "os.* is not available in dynup's Lua sandbox (snippets must not reach the proxy host); for the time use request_handle:timestamp()",
	"io":             "io.* is not available in dynup's Lua sandbox (snippets must not touch files); to log use request_handle:logInfo(msg)",
	"debug":          "debug.* is not available in dynup's Lua sandbox",
	"package":        "package.* is not available in dynup's Lua sandbox: a snippet must be self-contained",
	"require":        "require() is not available in dynup's Lua sandbox: a snippet must be self-contained",
	"module":         "module() is not available in dynup's Lua sandbox: a snippet must be self-contained",
	"dofile":         "dofile() is not available in dynup's Lua sandbox: a snippet must be self-contained",
	"loadfile":       "loadfile() is not available in dynup's Lua sandbox: a snippet must be self-contained",
	"load":           "load() is not available in dynup's Lua sandbox: write the code in the snippet itself",
	"loadstring":     "loadstring() is not available in dynup's Lua sandbox: write the code in the snippet itself",
	"collectgarbage": "collectgarbage() is not available in dynup's Lua sandbox",
	"getfenv":        "getfenv() is not available in dynup's Lua sandbox",
	"setfenv":        "setfenv() is not available in dynup's Lua sandbox",
	"coroutine":      "coroutine.* is not available in dynup's Lua sandbox (Envoy already runs each entry point as a coroutine)",
	"jit":            "jit.* is LuaJIT's compiler control; it is not available in dynup's Lua sandbox",
	"ffi":            "ffi is not available in dynup's Lua sandbox",
}

// installForeignGlobalHints makes reading one of foreignGlobals an API error carrying its hint.
// Other undefined globals still read as nil, as Lua requires.
func (s *sandbox) installForeignGlobalHints() {
	mt := s.L.NewTable()
	mt.RawSetString("__index", s.L.NewFunction(func(L *lua.LState) int {
		if name, ok := L.Get(2).(lua.LString); ok {
			if hint, ok := foreignGlobals[string(name)]; ok {
				s.apiErrorf("%s", hint)
			}
		}
		return 0
	}))
	s.L.SetMetatable(s.L.G.Global, mt)
}
