package luafilters

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSandboxHasNoEscapeHatches(t *testing.T) {
	src := `
function envoy_on_request(h)
  for _, name in ipairs({"os", "io", "debug", "package", "coroutine", "require", "dofile",
      "loadfile", "load", "loadstring", "module", "collectgarbage", "getfenv", "setfenv", "newproxy"}) do
    if rawget(_G, name) ~= nil then h:logErr(name .. " is reachable") end
  end
  if string.dump ~= nil then h:logErr("string.dump is reachable") end
  h:logInfo(getmetatable(h))
  h:logInfo(string.format("%5.2f|%-3s|%02d", 1, "a", 7))
  local n = 0
  for _ in pairs({a = 1, b = 2}) do n = n + 1 end
  h:logInfo(n)
end`
	res := dry(t, src, DefaultSampleRequest())
	want := []string{"Envoy object", " 1.00|a  |07", "2"}
	if got := messages(res.Logs); !reflect.DeepEqual(got, want) {
		t.Errorf("logs:\n got %q\nwant %q", got, want)
	}
}

func TestSandboxErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, phase, want string }{
		// Computed names get past the static check; the runtime hint still names the library.
		{"computed os lookup", `local lib = _G["o" .. "s"]`, PhaseAPI, "os.* is not available"},
		{"doubling a string", `local s = "x" for i = 1, 40 do s = s .. s end`, PhaseLimit, "allocation limit"},
		{"string.rep", `local s = ("x"):rep(1e9)`, PhaseLimit, "allocation limit"},
		{"gsub blow-up", `local s = ("a"):rep(2000) s = s:gsub(".", s)`, PhaseLimit, "allocation limit"},
		{"table.concat", `local t = {} local s = ("y"):rep(1000) for i = 1, 2000 do t[i] = s end local all = table.concat(t)`, PhaseLimit, "allocation limit"},
		{"string.format width", `local s = string.format("%99999s", "x")`, PhaseRuntime, "width or precision too long"},
		{"Go-only format syntax", `local s = string.format("%[1]s%[1]s", "x")`, PhaseRuntime, "invalid conversion"},
		{"concatenating nil", `local s = "a" .. nil`, PhaseRuntime, "attempt to concatenate a nil value"},
		{"deep recursion", `local function f(n) return 1 + f(n + 1) end f(1)`, PhaseRuntime, "stack overflow"},
		{"error with a table", `error({code = 1})`, PhaseRuntime, "error raised with a table value"},
		{"plain error", `error("custom failure")`, PhaseRuntime, "custom failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A small allocation budget keeps the blow-up cases fast on slow machines.
			lim := DefaultLimits()
			lim.MaxAllocBytes = 1 << 20
			verr := mustReject(t, Validate("function envoy_on_request(h)\n  "+tc.body+"\nend", lim))
			if verr.Phase != tc.phase || verr.Line != 2 || !strings.Contains(verr.Msg, tc.want) {
				t.Errorf("got %#v, want %s error on line 2 containing %q", verr, tc.phase, tc.want)
			}
		})
	}
}

// ".." and string.gsub are reimplemented (see concat.go and gsub.go); they must still behave
// like Lua 5.1.
func TestStringBuildingSemantics(t *testing.T) {
	src := `
local mt = {__concat = function(a, b) return "meta" end}
function envoy_on_request(h)
  h:logInfo(1 .. 2 .. "|" .. 1.5 .. "|" .. -3)
  h:logInfo(setmetatable({}, mt) .. "x")
  h:logInfo((("abc"):gsub("x*", "-")))
  h:logInfo(table.concat({("hello world"):gsub("(%w+)", "<%1>")}, " "))
  h:logInfo((("a.b"):gsub("%.", "%%")) .. " " .. (("ab"):gsub(".", "%0%0")))
  h:logInfo((("hello"):gsub("l", {l = "L"})) .. " " .. (("hello"):gsub("l", {l = false})))
  h:logInfo((("k=v, a=b"):gsub("(%w+)=(%w+)", function(k, v) return v .. "=" .. k end)))
  h:logInfo((("aaa"):gsub("a", "b", 2)) .. " " .. (("abc"):gsub("()", "%1")))
end`
	res := dry(t, src, DefaultSampleRequest())
	want := []string{"12|1.5|-3", "meta", "-a-b-c-", "<hello> <world> 2", "a%b aabb", "heLLo hello", "v=k, b=a", "bba 1a2b3c4"}
	if got := messages(res.Logs); !reflect.DeepEqual(got, want) {
		t.Errorf("logs:\n got %q\nwant %q", got, want)
	}
	verr := mustReject(t, Validate("local __dynup_concat = 1\nfunction envoy_on_request(h) end", DefaultLimits()))
	if verr.Phase != PhaseAPI || verr.Line != 1 || !strings.Contains(verr.Msg, "reserved") {
		t.Errorf("reserved name: %#v", verr)
	}
}

func TestTimeLimit(t *testing.T) {
	// With a practically unlimited instruction budget, the wall clock has to stop the loop.
	lim := Limits{MaxInstructions: 1 << 50, Timeout: 50 * time.Millisecond}
	start := time.Now()
	verr := mustReject(t, Validate("function envoy_on_request(h)\n  while true do end\nend", lim))
	if verr.Phase != PhaseLimit || verr.Line != 2 || !strings.Contains(verr.Msg, "time limit of 50ms") {
		t.Errorf("got %#v", verr)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %v", elapsed)
	}
}

func TestInstructionLimitIsDeterministic(t *testing.T) {
	// 1000 iterations fit in a 100k budget; 100k iterations do not.
	loop := "function envoy_on_request(h)\n  local n = 0\n  for i = 1, %d do n = n + i end\nend"
	lim := Limits{MaxInstructions: 100_000, Timeout: time.Minute}
	if err := Validate(fmt.Sprintf(loop, 1000), lim); err != nil {
		t.Errorf("small loop: %v", err)
	}
	verr := mustReject(t, Validate(fmt.Sprintf(loop, 100_000), lim))
	if verr.Phase != PhaseLimit || !strings.Contains(verr.Msg, "budget of 100000 Lua instructions") {
		t.Errorf("big loop: %#v", verr)
	}
}

func TestZeroLimitsMeanDefaults(t *testing.T) {
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Errorf("Limits{} -> %+v", got)
	}
	verr := mustReject(t, Validate("while true do end", Limits{}))
	if verr.Phase != PhaseLimit {
		t.Errorf("got %#v", verr)
	}
}

func TestLogsAreBounded(t *testing.T) {
	res := dry(t, "function envoy_on_request(h)\n  for i = 1, 10000 do h:logInfo(('x'):rep(1000)) end\nend", DefaultSampleRequest())
	if n := len(res.Logs); n < 2 || n > maxLogLines+1 {
		t.Fatalf("%d log lines", n)
	}
	total := 0
	for _, l := range res.Logs {
		total += len(l.Message)
	}
	if total > maxLogBytes+100 || res.Logs[len(res.Logs)-1].Message != "dynup: further log lines dropped" {
		t.Errorf("%d bytes, last line %q", total, res.Logs[len(res.Logs)-1].Message)
	}
}

func TestBadSamples(t *testing.T) {
	src := "function envoy_on_request(h) end"
	for _, tc := range []struct {
		name string
		req  SampleRequest
		resp *SampleResponse
	}{
		{"method", SampleRequest{Method: "GE T"}, nil},
		{"path", SampleRequest{Path: "relative"}, nil},
		{"pseudo-header", SampleRequest{Headers: map[string]string{":method": "GET"}}, nil},
		{"header injection", SampleRequest{Headers: map[string]string{"x": "a\r\nb: c"}}, nil},
		{"header name", SampleRequest{Headers: map[string]string{"bad name": "x"}}, nil},
		{"status", SampleRequest{}, &SampleResponse{Status: 42}},
	} {
		_, err := DryRun(src, tc.req, tc.resp, DefaultLimits())
		var verr *ValidationError
		if !errors.Is(err, ErrBadSample) || errors.As(err, &verr) {
			t.Errorf("%s: want ErrBadSample, got %v", tc.name, err)
		}
	}
}

func TestResultJSON(t *testing.T) {
	res := dry(t, readSnippet(t, "examples/deny_delete_admin.lua"),
		SampleRequest{Method: "DELETE", Headers: map[string]string{"host": "admin.upyun.com"}})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"action":"respond"`, `"respond":{"status":403`, `"request_headers":[]`, `"response_headers":[]`, `"response_ran":false`, `"logs":[{"level":"warn"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON lacks %s: %s", key, b)
		}
	}
	verr := &ValidationError{Line: 3, Phase: PhaseAPI, Msg: "m"}
	b, _ = json.Marshal(verr)
	if string(b) != `{"line":3,"phase":"api","message":"m"}` || verr.Error() != "line 3: m" {
		t.Errorf("ValidationError JSON %s, Error %q", b, verr.Error())
	}
}

// luaString renders b as a Lua string literal with every byte escaped.
func luaString(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		fmt.Fprintf(&sb, "\\%d", c)
	}
	sb.WriteByte('"')
	return sb.String()
}

func TestVerifySignature(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("signed payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
local DER, SIG = %s, %s
function envoy_on_request(h)
  local key = h:importPublicKey(DER, #DER):get()
  local ok = h:verifySignature("SHA256", key, SIG, #SIG, "signed payload", 14)
  local bad, msg = h:verifySignature("SHA256", key, SIG, #SIG, "tampered payload", 16)
  local md5, md5msg = h:verifySignature("MD5", key, SIG, #SIG, "x", 1)
  local junk = h:importPublicKey("not a key", 9):get()
  h:logInfo(tostring(ok) .. " " .. tostring(bad) .. " " .. md5msg .. " " .. tostring(junk))
end`, luaString(der), luaString(sig))
	res := dry(t, src, DefaultSampleRequest())
	if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"true false MD5 is not supported. nil"}) {
		t.Errorf("logs = %q", got)
	}
}

// Sandboxes share nothing mutable: many validations may run at once (run with -race).
func TestConcurrentValidation(t *testing.T) {
	good := readSnippet(t, "examples/deny_delete_admin.lua")
	bad := readSnippet(t, "testdata/bad/unknown_handle_method.lua")
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i%2 == 0 {
				if err := Validate(good, DefaultLimits()); err != nil {
					errs <- err.Error()
				}
				return
			}
			if err := Validate(bad, DefaultLimits()); err == nil || !strings.Contains(err.Error(), "request_handle:foo") {
				errs <- fmt.Sprint("bad snippet: ", err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// Long ".." chains are split into several guarded calls (a function has 255 registers).
func TestLongConcatenationChain(t *testing.T) {
	src := "function envoy_on_request(h)\n  local x = 'a'" + strings.Repeat(" .. 'b'", 299) + "\n  h:logInfo(#x .. x:sub(1, 3))\nend"
	res := dry(t, src, DefaultSampleRequest())
	if got := messages(res.Logs); !reflect.DeepEqual(got, []string{"300abb"}) {
		t.Errorf("logs = %q", got)
	}
}
