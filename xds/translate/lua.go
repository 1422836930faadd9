package translate

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dynup/dynup/registry"
)

// LuaFilterName is the name of the Lua filter in Envoy's connection manager; per-host configuration refers
// to the filter by it.
const LuaFilterName = wellknown.Lua

// luaFilter is Envoy's Lua filter, always in the chain and disabled by default, without code of its own:
// a virtual host turns it on by carrying a LuaPerRoute with its code (Envoy treats a filter that a route
// or virtual host configures as enabled). Snippets therefore travel in RDS only: the listener never
// changes when a snippet does, so no connection is drained for it, and each host's code is independent.
func luaFilter() *hcm.HttpFilter {
	return &hcm.HttpFilter{
		Name:       LuaFilterName,
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&luav3.Lua{StatPrefix: "dynup"})},
		Disabled:   true,
	}
}

// snippetsFor returns the snippets that apply to a virtual host, in the order they run.
func snippetsFor(vh *virtualHost, snippets []registry.ActiveSnippet) []registry.ActiveSnippet {
	var out []registry.ActiveSnippet
	for _, sn := range snippets {
		if sn.AppliesTo.Matches(vh.name, vh.domains) {
			out = append(out, sn)
		}
	}
	slices.SortStableFunc(out, func(a, b registry.ActiveSnippet) int {
		return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.Name, b.Name))
	})
	return out
}

// luaPerHost is a virtual host's typed_per_filter_config entry, or nil when no snippet applies (the filter
// then stays off for the host).
func luaPerHost(vh *virtualHost, snippets []registry.ActiveSnippet) map[string]*anypb.Any {
	mine := snippetsFor(vh, snippets)
	if len(mine) == 0 {
		return nil
	}
	perRoute := &luav3.LuaPerRoute{Override: &luav3.LuaPerRoute_SourceCode{SourceCode: &core.DataSource{
		Specifier: &core.DataSource_InlineString{InlineString: luaChunk(vh.name, mine)},
	}}}
	return map[string]*anypb.Any{LuaFilterName: mustAny(perRoute)}
}

// luaChunk is the one Lua program a host runs. Envoy takes a single LuaPerRoute per virtual host, so
// several snippets are combined here, not in the listener (named source_codes would live in LDS, and a
// snippet change would then drain connections). Each snippet keeps its own semantics:
//   - it is compiled from its own text with loadstring (chunk name "<name>@v<version>"), so Envoy's error
//     messages carry the snippet's name and its own line numbers;
//   - it runs in its own environment (setfenv, reading through to _G), so its globals, entry points
//     included, never clash with another snippet's;
//   - a snippet that fails to load, or raises an error, is caught (pcall; LuaJIT yields across it, so
//     respond() and body() work) and the next one still runs; the first error is raised again at the end
//     so that Envoy logs it and counts it in its lua errors statistic, as it would for a lone snippet
//     (later ones are logged with logErr). A load failure can therefore never make Envoy reject the whole
//     route table;
//   - respond() ends the request there, as it does in Envoy: later snippets do not run.
//
// Only the entry points some snippet defines are defined, so Envoy skips the other direction entirely.
func luaChunk(host string, snippets []registry.ActiveSnippet) string {
	var b strings.Builder
	names := make([]string, len(snippets))
	for i, sn := range snippets {
		names[i] = chunkName(sn)
	}
	fmt.Fprintf(&b, "-- dynup: Lua snippets of host %q, in order: %s.\n", host, strings.Join(names, ", "))
	b.WriteString(luaPrelude)
	request, response := false, false
	for _, sn := range snippets {
		onRequest := slices.Contains(sn.EntryPoints, "envoy_on_request")
		onResponse := slices.Contains(sn.EntryPoints, "envoy_on_response")
		request, response = request || onRequest, response || onResponse
		// Lua drops a newline right after the opening bracket; one before the closing bracket keeps the
		// source's tail from joining it, and is the source's own last newline when it has one.
		src := sn.Source
		if !strings.HasSuffix(src, "\n") {
			src += "\n"
		}
		level := longBracketLevel(src)
		fmt.Fprintf(&b, "dynup_load(%q, %t, %t, [%s[\n%s]%s])\n", chunkName(sn), onRequest, onResponse, level, src, level)
	}
	if request {
		b.WriteString("function envoy_on_request(request_handle) dynup_run(\"envoy_on_request\", request_handle) end\n")
	}
	if response {
		b.WriteString("function envoy_on_response(response_handle) dynup_run(\"envoy_on_response\", response_handle) end\n")
	}
	return b.String()
}

func chunkName(sn registry.ActiveSnippet) string { return fmt.Sprintf("%s@v%d", sn.Name, sn.Version) }

// longBracketLevel returns the "=" run of the shortest long bracket whose closing form the source does
// not contain.
func longBracketLevel(src string) string {
	level := ""
	for strings.Contains(src, "]"+level+"]") {
		level += "="
	}
	return level
}

const luaPrelude = `local dynup_snippets = {}
local function dynup_load(name, on_request, on_response, source)
  local env = setmetatable({}, {__index = _G})
  local chunk, err = loadstring(source, "=" .. name)
  if chunk then
    setfenv(chunk, env)
    local ok, run_err = pcall(chunk)
    if not ok then err = run_err end
  end
  dynup_snippets[#dynup_snippets + 1] = {name = name, env = env, err = err,
    envoy_on_request = on_request, envoy_on_response = on_response}
end
local function dynup_run(entry, handle)
  local first_err
  for _, s in ipairs(dynup_snippets) do
    if s[entry] then
      local err = s.err and ("did not load: " .. tostring(s.err))
      if not err then
        local ok, run_err = pcall(s.env[entry], handle)
        if not ok then err = tostring(run_err) end
      end
      if err then
        err = "dynup snippet " .. s.name .. ": " .. err
        if first_err then handle:logErr(err) else first_err = err end
      end
    end
  end
  if first_err then error(first_err, 0) end
end
`
