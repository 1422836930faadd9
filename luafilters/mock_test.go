package luafilters

import (
	"reflect"
	"strings"
	"testing"
)

// dry runs src with req (and the default response) and fails the test on error.
func dry(t *testing.T, src string, req SampleRequest) *DryRunResult {
	t.Helper()
	res, err := DryRun(src, req, nil, DefaultLimits())
	if err != nil {
		t.Fatalf("DryRun: %v", err)
	}
	return res
}

func messages(logs []LogLine) []string {
	out := make([]string, len(logs))
	for i, l := range logs {
		out[i] = l.Message
	}
	return out
}

func TestHeaderMapAPI(t *testing.T) {
	src := `
function envoy_on_request(h)
  local hs = h:headers()
  h:logInfo(hs:get("accept"))           -- repeated values are joined with ","
  h:logInfo(hs:getAtIndex("accept", 0))  -- index from 0, as in Envoy
  local none = hs:getAtIndex("accept", 2) -- Envoy returns no value at all, so keep it in a local
  h:logInfo(tostring(none))
  h:logInfo(hs:getNumValues("ACCEPT"))   -- names are case-insensitive
  local missing = hs:get("missing")
  h:logInfo(tostring(missing))
  hs:replace("accept", "*/*")
  hs:remove("x-drop")
  hs:add("X-Added", 42)                  -- numbers are coerced, names lower-cased
  for name, value in pairs(hs) do
    h:logDebug(name .. "=" .. value)
  end
  h:logInfo(tostring(hs == h:headers())) -- the same object every time
end`
	req := SampleRequest{Method: "GET", Path: "/p", Headers: map[string]string{"Accept": "a", "x-drop": "1"}}
	// Repeated values cannot be expressed in a map; the snippet adds the second one first.
	src = strings.Replace(src, "local hs = h:headers()", "local hs = h:headers()\n  hs:add(\"accept\", \"b\")", 1)
	res := dry(t, src, req)
	wantLogs := []string{"a,b", "a", "nil", "2", "nil",
		":method=GET", ":path=/p", ":authority=example.com", ":scheme=http", "accept=*/*", "x-added=42", "true"}
	if got := messages(res.Logs); !reflect.DeepEqual(got, wantLogs) {
		t.Errorf("logs:\n got %q\nwant %q", got, wantLogs)
	}
	wantChanges := HeaderChanges{
		{Op: OpAdd, Name: "accept", Value: "b", Line: 4},
		{Op: OpReplace, Name: "accept", Value: "*/*", Line: 12},
		{Op: OpRemove, Name: "x-drop", Line: 13},
		{Op: OpAdd, Name: "x-added", Value: "42", Line: 14},
	}
	if !reflect.DeepEqual(res.RequestHeaders, wantChanges) {
		t.Errorf("changes:\n got %+v\nwant %+v", res.RequestHeaders, wantChanges)
	}
}

func TestBodyAPI(t *testing.T) {
	t.Run("request with a body", func(t *testing.T) {
		src := `
function envoy_on_request(h)
  local body = h:body()
  h:logInfo(body:length() .. ":" .. body:getBytes(0, 5))
  h:logInfo(body:setBytes("replaced"))
end`
		res := dry(t, src, SampleRequest{Method: "POST", Path: "/", Body: "hello world"})
		if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"11:hello", "8"}) {
			t.Errorf("logs = %q", got)
		}
		if res.RequestBody == nil || *res.RequestBody != "replaced" {
			t.Errorf("request body = %v", res.RequestBody)
		}
		want := HeaderChanges{{Op: OpReplace, Name: "content-length", Value: "8", Line: 5}}
		if !reflect.DeepEqual(res.RequestHeaders, want) {
			t.Errorf("changes = %+v", res.RequestHeaders)
		}
	})
	t.Run("no body: nil, unless always_wrap_body", func(t *testing.T) {
		src := `
function envoy_on_request(h)
  local body, trailers = h:body(), h:trailers()
  h:logInfo(tostring(body))
  h:logInfo(h:body(true):length())
  h:logInfo(tostring(trailers))
end`
		res := dry(t, src, DefaultSampleRequest())
		if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"nil", "0", "nil"}) {
			t.Errorf("logs = %q", got)
		}
	})
	t.Run("bodyChunks streams and lets the headers go", func(t *testing.T) {
		src := `
function envoy_on_response(h)
  local n = 0
  for chunk in h:bodyChunks() do
    n = n + chunk:length()
  end
  h:logInfo(n)
end`
		res, err := DryRun(src, DefaultSampleRequest(), &SampleResponse{Body: "0123456789"}, DefaultLimits())
		if err != nil || !reflect.DeepEqual(messages(res.Logs), []string{"10"}) {
			t.Fatalf("res=%+v err=%v", res, err)
		}
	})
	for _, tc := range []struct{ name, body, want string }{
		{"getBytes out of range", `local b = h:body() b:getBytes(5, 100)`, "index/length must be >= 0"},
		{"body() after streaming", `for c in h:bodyChunks() do end h:body()`, "cannot call body() after the body has been streamed"},
		{"bodyChunks() after body()", `h:body() h:bodyChunks()`, "cannot call bodyChunks() after body processing has begun"},
		{"respond() while streaming", `for c in h:bodyChunks() do h:respond({[":status"] = "400"}) end`, "respond() cannot be called after the headers have been continued"},
		{"body() with a non-boolean", `h:body("yes")`, "bad argument #1 to body() (boolean expected, got string)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "function envoy_on_request(h)\n  " + tc.body + "\nend"
			_, err := DryRun(src, SampleRequest{Method: "PUT", Body: "some data"}, nil, DefaultLimits())
			verr := mustReject(t, err)
			if verr.Phase != PhaseAPI || verr.Line != 2 || !strings.Contains(verr.Msg, tc.want) {
				t.Errorf("got %#v, want api error on line 2 containing %q", verr, tc.want)
			}
		})
	}
}

func TestRespond(t *testing.T) {
	src := `
function envoy_on_request(h)
  h:logInfo("before")
  h:respond({[":status"] = 302, ["Location"] = "/login", ["set-cookie"] = {"a=1", "b=2"}}, "moved")
  h:logInfo("after") -- never runs: Envoy does not resume a script after respond()
end
function envoy_on_response(h)
  h:logInfo("response")
end`
	res := dry(t, src, DefaultSampleRequest())
	want := &LocalReply{Status: 302, Body: "moved", Headers: []Header{
		{"location", "/login"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"content-length", "5"},
	}}
	if res.Action != ActionRespond || !reflect.DeepEqual(res.Respond, want) {
		t.Errorf("got %s %+v, want %+v", res.Action, res.Respond, want)
	}
	if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"before"}) || res.ResponseRan {
		t.Errorf("logs = %q, response_ran = %v", got, res.ResponseRan)
	}
	// Validate still exercises envoy_on_response after a local reply.
	bad := strings.Replace(src, `h:logInfo("response")`, `h:logInfo(nil .. "x")`, 1)
	if verr := mustReject(t, Validate(bad, DefaultLimits())); verr.Phase != PhaseRuntime || verr.Line != 8 {
		t.Errorf("Validate: %#v", verr)
	}
	if _, err := DryRun(bad, DefaultSampleRequest(), nil, DefaultLimits()); err != nil {
		t.Errorf("DryRun must not run envoy_on_response after a local reply: %v", err)
	}
	for _, tc := range []struct{ call, want string }{
		{`h:respond({["x"] = "y"}, "")`, `must set ":status"`},
		{`h:respond({[":status"] = "99"}, "")`, "between 200-599"},
		{`h:respond("403")`, "bad argument #1 to respond() (table expected, got string)"},
		{`h:respond({[":status"] = "403", ["x"] = {1, {}}})`, `header "x" has a table value`},
		{`h:respond({[":status"] = "403", ["x"] = "a\r\nb: c"})`, "CR, LF or NUL"},
	} {
		verr := mustReject(t, Validate("function envoy_on_request(h)\n  "+tc.call+"\nend", DefaultLimits()))
		if verr.Phase != PhaseAPI || verr.Line != 2 || !strings.Contains(verr.Msg, tc.want) {
			t.Errorf("%s: got %#v, want %q", tc.call, verr, tc.want)
		}
	}
}

func TestStreamInfoAndMetadata(t *testing.T) {
	src := `
function envoy_on_request(h)
  local info = h:streamInfo()
  h:logInfo(info:protocol() .. " " .. info:downstreamRemoteAddress() .. " sni=" .. info:requestedServerName())
  h:logInfo(tostring(h:connection():ssl() ~= nil) .. " " .. tostring(info:downstreamSslConnection() ~= nil))
  info:dynamicMetadata():set("envoy.filters.http.lua", "request.info", {user = "ann", roles = {"a", "b"}, n = 3, ok = true})
  local route, state = h:metadata():get("anything"), info:filterState():get("x")
  h:logInfo(tostring(route) .. " " .. tostring(state))
end
function envoy_on_response(h)
  local meta = h:streamInfo():dynamicMetadata():get("envoy.filters.http.lua")["request.info"]
  h:logInfo(meta.user .. " " .. meta.roles[2] .. " " .. meta.n .. " " .. tostring(meta.ok))
  for filter in pairs(h:streamInfo():dynamicMetadata()) do
    h:logInfo(filter)
  end
end`
	res := dry(t, src, DefaultSampleRequest())
	want := []string{"HTTP/1.1 198.51.100.7:51234 sni=", "false false", "nil nil", "ann b 3 true", "envoy.filters.http.lua"}
	if got := messages(res.Logs); !reflect.DeepEqual(got, want) {
		t.Errorf("logs:\n got %q\nwant %q", got, want)
	}
	wantMeta := map[string]map[string]any{"envoy.filters.http.lua": {"request.info": map[string]any{
		"user": "ann", "roles": []any{"a", "b"}, "n": 3.0, "ok": true}}}
	if !reflect.DeepEqual(res.DynamicMetadata, wantMeta) {
		t.Errorf("dynamic metadata = %#v", res.DynamicMetadata)
	}

	tls := `
function envoy_on_request(h)
  local ssl = h:connection():ssl()
  h:logInfo(h:streamInfo():requestedServerName() .. " " .. ssl:tlsVersion() .. " " .. tostring(ssl:peerCertificatePresented()))
end`
	res = dry(t, tls, SampleRequest{TLS: true, Headers: map[string]string{"host": "api.example.com:443"}})
	if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"api.example.com TLSv1.3 false"}) {
		t.Errorf("tls logs = %q", got)
	}

	verr := mustReject(t, Validate(`function envoy_on_request(h)
  h:streamInfo():dynamicMetadata():set("f", "k", function() end)
end`, DefaultLimits()))
	if verr.Phase != PhaseAPI || !strings.Contains(verr.Msg, "unexpected type 'function'") {
		t.Errorf("got %#v", verr)
	}
}

func TestHTTPCall(t *testing.T) {
	src := `
function envoy_on_request(h)
  local headers, body = h:httpCall("auth", {[":method"] = "POST", [":path"] = "/check", [":authority"] = "auth"}, "token", 500)
  if headers[":status"] ~= "200" then
    h:respond({[":status"] = "403"}, body)
  end
end`
	res := dry(t, src, DefaultSampleRequest())
	wantCall := []HTTPCall{{Cluster: "auth", Method: "POST", Path: "/check", Authority: "auth", TimeoutMS: 500, Line: 3}}
	if !reflect.DeepEqual(res.HTTPCalls, wantCall) {
		t.Errorf("calls = %+v", res.HTTPCalls)
	}
	// The mock answers like Envoy does when a call fails, so the failure branch runs.
	if res.Action != ActionRespond || res.Respond.Body != "upstream failure" {
		t.Errorf("got %s %+v", res.Action, res.Respond)
	}

	async := `function envoy_on_request(h)
  local r = h:httpCall("log", {[":method"] = "GET", [":path"] = "/", [":authority"] = "log"}, nil, {asynchronous = true, timeout_ms = 10})
  h:logInfo(tostring(r))
end`
	res = dry(t, async, DefaultSampleRequest())
	if !reflect.DeepEqual(messages(res.Logs), []string{"nil"}) || !res.HTTPCalls[0].Asynchronous {
		t.Errorf("async: %+v", res)
	}
	for _, tc := range []struct{ call, want string }{
		{`h:httpCall("c", {[":method"] = "GET", [":path"] = "/"}, nil, 100)`, "must include ':path', ':method', and ':authority'"},
		{`h:httpCall("c", {[":method"] = "GET", [":path"] = "/", [":authority"] = "c"}, nil, {retries = 3})`, `"retries" is not valid key for httpCall() options`},
		{`h:httpCall("c", {[":method"] = "GET", [":path"] = "/", [":authority"] = "c"}, nil, -1)`, "timeout must be >= 0"},
		{`h:httpCall("c", {[":method"] = "GET", [":path"] = "/", [":authority"] = "c"}, nil, 10, "yes")`, "asynchronous flag must be"},
	} {
		verr := mustReject(t, Validate("function envoy_on_request(h)\n  "+tc.call+"\nend", DefaultLimits()))
		if verr.Phase != PhaseAPI || verr.Line != 2 || !strings.Contains(verr.Msg, tc.want) {
			t.Errorf("%s: got %#v, want %q", tc.call, verr, tc.want)
		}
	}
}

func TestHandleMisuse(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"dot instead of colon", "function envoy_on_request(h)\n  h.headers()\nend", "write request_handle:headers(...) with a colon"},
		{"assigning a field", "function envoy_on_request(h)\n  h.extra = 1\nend", "cannot assign request_handle.extra"},
		{"non-string key", "function envoy_on_request(h)\n  local x = h[1]\nend", "request_handle[1]: Envoy objects can only be used through their methods"},
		{"modify while iterating", "function envoy_on_request(h)\n  for k in pairs(h:headers()) do h:headers():remove(k) end\nend", "cannot be modified while iterating"},
		{"modify after break", "function envoy_on_request(h)\n  for k in pairs(h:headers()) do break end h:headers():add('a', 'b')\nend", "cannot be modified while iterating"},
		{"reason phrase on a request", "function envoy_on_request(h)\n  h:headers():setHttp1ReasonPhrase('Nope')\nend", "only works on response headers"},
		{"bad header name", "function envoy_on_request(h)\n  h:headers():add('bad name', 'x')\nend", `"bad name" is not a valid header name`},
		{"header value injection", "function envoy_on_request(h)\n  h:headers():add('x', 'a\\r\\nb: c')\nend", "CR, LF or NUL"},
		{"nil header value", "function envoy_on_request(h)\n  h:headers():add('x', h:headers():get('nope'))\nend", "bad argument #2 to add() (string expected, got no value)"},
		{"old requestInfo()", "function envoy_on_request(h)\n  h:requestInfo()\nend", "requestInfo() was renamed streamInfo()"},
		{"chained typo", "function envoy_on_request(h)\n  h:streamInfo():dynamicMetadata():put('a', 'b', 'c')\nend", "dynamicMetadata:put is not part of Envoy's Lua API"},
		{"typo on a typed local", "function envoy_on_request(h)\n  local info = h:streamInfo()\n  if false then info:protocl() end\nend", "streamInfo:protocl is not part of Envoy's Lua API; did you mean streamInfo:protocol?"},
		{"chunk typo", "function envoy_on_request(h)\n  for chunk in h:bodyChunks() do chunk:size() end\nend", "body:size is not part of Envoy's Lua API; use body:length()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verr := mustReject(t, Validate(tc.src, DefaultLimits()))
			if verr.Phase != PhaseAPI || verr.Line < 2 || !strings.Contains(verr.Msg, tc.want) {
				t.Errorf("got %#v, want an api error containing %q", verr, tc.want)
			}
		})
	}
}

// The static check must stay silent when it cannot be sure.
func TestStaticCheckHasNoFalsePositives(t *testing.T) {
	for _, src := range []string{
		// A local reassigned to a plain table is not an Envoy object any more.
		"function envoy_on_request(h)\n  local x = h:headers()\n  x = {custom = function() end}\n  x.custom()\nend",
		// A user-defined ngx shim is the snippet's own.
		"ngx = {say = function() end}\nfunction envoy_on_request(h)\n  ngx.say()\nend",
		// A local named like a library is just a local.
		"function envoy_on_request(h)\n  local os = 'linux'\n  h:logInfo(os)\nend",
		// A parameter shadowing the handle.
		"function envoy_on_request(h)\n  local function f(h) return h.anything end\n  f({anything = 1})\nend",
		// Field access by a valid method name.
		"function envoy_on_request(h)\n  local get = h.headers\n  get(h):add('a', 'b')\nend",
	} {
		if err := Validate(src, DefaultLimits()); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
}

func TestHandleUtilities(t *testing.T) {
	src := `
function envoy_on_request(h)
  h:logInfo(h:base64Escape("hi!"))
  h:logInfo(type(h:timestamp()) .. " " .. tostring(h:timestamp(EnvoyTimestampResolution.MILLISECOND) > 1600000000000))
  h:logInfo(#h:timestampString(EnvoyTimestampResolution.MICROSECOND))
  h:setUpstreamOverrideHost("10.0.0.7", true)
  h:clearRouteCache()
  h:logInfo(type(h:filterContext()))
  h:logInfo(bit.band(0xff, 0x0f) .. " " .. bit.lshift(1, 31) .. " " .. bit.tohex(-1) .. " " .. bit.bxor(5, 3))
  print("printed", 1, h)
end`
	res := dry(t, src, DefaultSampleRequest())
	want := []string{"aGkh", "number true", "16", "table", "15 -2147483648 ffffffff 6", "printed\t1\trequest_handle"}
	if got := messages(res.Logs); !reflect.DeepEqual(got, want) {
		t.Errorf("logs:\n got %q\nwant %q", got, want)
	}
	if len(res.Notes) != 2 || !strings.Contains(res.Notes[0], "10.0.0.7") {
		t.Errorf("notes = %q", res.Notes)
	}
	verr := mustReject(t, Validate("function envoy_on_request(h)\n  h:setUpstreamOverrideHost('backend.local')\nend", DefaultLimits()))
	if !strings.Contains(verr.Msg, "valid IP address") {
		t.Errorf("got %#v", verr)
	}
}
