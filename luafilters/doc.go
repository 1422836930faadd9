// Package luafilters validates and dry-runs Envoy Lua HTTP filter snippets before dynup ships
// them to any Envoy.
//
// A snippet is Lua written against Envoy's Lua filter API
// (https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/lua_filter):
// it defines envoy_on_request(request_handle) and/or envoy_on_response(response_handle).
// A mistake in it only shows in Envoy at request time, as a script error on live traffic, so
// dynup checks it up front, in this order:
//
//  1. size: at most Limits.MaxSourceBytes;
//  2. syntax: it parses as Lua 5.1 (gopher-lua);
//  3. static API check: method names used on the handle, and on objects obtained from it, exist
//     in Envoy's API, and no foreign global (OpenResty's ngx, os, io, require...) is read, in
//     every branch, including those the sample request does not take;
//  4. execution: the chunk runs, then each entry point runs in a sandbox against a mock of
//     Envoy's stream handle, with a sample request and response. The mock reproduces Envoy's
//     rules (respond() only on the request path and only before the headers went on, no header
//     changes during pairs(), :status between 200 and 599, body() nil without a body, handles
//     dead once their entry point returns...) and fails at the first call Envoy's API does not
//     have, naming it and its line.
//
// Validate runs this with DefaultSampleRequest and DefaultSampleResponse; DryRun runs it with
// the caller's samples and reports what Envoy would do (continue or answer locally, header
// changes, logs...).
//
// # Sandbox
//
// Only the base, table, string and math libraries are opened, plus LuaJIT's bit library, which
// Envoy's runtime has. os, io, debug, package/require, coroutine, dofile, loadfile, load,
// loadstring, collectgarbage, getfenv and setfenv are absent; reading one of them is an API
// error with a hint. Every run is bounded by Limits: VM instructions (counted through the
// context gopher-lua polls before each instruction), wall-clock time, and the bytes of strings
// and copies the snippet makes dynup build (".." is compiled into a call of a guarded Go
// function for this; string.rep, format, gsub, table.concat and the mock's copies charge the
// same budget).
//
// # Deliberate deviations from Envoy
//
//   - Looking up a name an Envoy object does not have is an error at once (Envoy yields nil and
//     fails when it is called), including plain field reads such as request_handle.foo.
//   - os, io, require and the other libraries above exist in Envoy's LuaJIT; dynup refuses
//     snippets that need them. The interpreter is gopher-lua (Lua 5.1): LuaJIT-only modules
//     (ffi, jit) are missing, and string.format accepts Lua 5.1 conversions only.
//   - A sample body arrives as a single data frame; samples have no trailers, so trailers()
//     returns nil (after letting the headers continue when there is a body, as Envoy does).
//   - httpCall() never contacts a cluster. It checks its arguments as Envoy does, records the
//     call in DryRunResult.HTTPCalls and answers like Envoy does when a call fails:
//     {[":status"] = "503"}, "upstream failure". Asynchronous calls return nothing.
//   - After respond(), DryRun does not run envoy_on_response on the local reply. Validate runs
//     envoy_on_response on the sample response regardless, so that it is exercised too.
//   - setHttp1ReasonPhrase() on request headers is an error (Envoy ignores it), and header names
//     and values are checked when set (Envoy leaves CR/LF to its codec, which resets the stream).
//   - Stream info, connection and SSL facts are canned: HTTP/1.1, documentation addresses,
//     empty route metadata, filter state and typed metadata, TLS without a client certificate
//     when SampleRequest.TLS is set. verifySignature() supports RSA (PKCS #1 v1.5) and ECDSA.
//   - virtualHost(), route(), stats() and downstreamRequestHeaders() exist only in Envoy builds
//     newer than the documented API this package models; they are reported as unknown, with a
//     hint saying so.
//   - print() output is captured as log lines of level "print".
//
// # Known limits
//
// A single call into a Go library function runs to completion before the time limit is checked
// again. Lua patterns are backtracking matchers, so string.find/match/gmatch/gsub with a
// pathological pattern on a long string can overrun Limits.Timeout. Callers serving untrusted
// users should bound how many validations run at once.
package luafilters
