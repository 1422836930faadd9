package luafilters

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The pattern functions are a port of Lua 5.1's; these are Lua 5.1's answers.
func TestPatternFunctionsFollowLua51(t *testing.T) {
	src := `
local function show(...)
  local out = {}
  for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end
  return table.concat(out, " ")
end
function envoy_on_request(h)
  local function log(...) h:logInfo(show(...)) end
  log(string.find("hello world", "o w"))
  log(string.find("hello", "l+"))
  log(string.find("hello", "xyz"))
  log(string.find("a.b", ".", 1, true))
  log(string.find("hello", "l", -2))
  log(string.find("", ""))
  log(string.find("key=value", "(%w+)=(%w+)"))
  log(string.match("  trim me  ", "^%s*(.-)%s*$"))
  log(string.match("THE (quick) fox", "%((%a+)%)"))
  log(string.match("f(a(b)c)d", "%b()"))
  log(string.match("THE quick", "%f[%a]%a+", 4))
  log(string.match("hello", "()ll()"))
  log(string.match("abcabc", "(abc)%1"))
  log(string.match("2024-01-02", "^(%d%d%d%d)-(%d%d)-(%d%d)$"))
  log(string.match("[test]", "^%[(.*)%]$"))
  log(("0xFFg"):match("%x+", 3), ("Hello"):match("%u%l+"), ("a1 b2"):match("[%a][%d]$"))
  log(("x"):rep(10):find("^x+$"))
  local pairs_seen = {}
  for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do pairs_seen[#pairs_seen + 1] = k .. v end
  local empties = 0
  for _ in ("abc"):gmatch("") do empties = empties + 1 end
  log(table.concat(pairs_seen, ","), empties)
  log(string.gsub("hello world", "o", "0", 1))
  log(string.gsub("abc", "%w", "%%%0"))
  log(string.gsub("a,b;c", "%p", ""))
  log(string.gsub("aaa", "^a", "b"))
  log(string.gsub("abc", "x*", "-"))
  log(string.gsub("hello world", "(%w+) (%w+)", "%2 %1"))
  log(string.gsub("$name is $age", "%$(%w+)", {name = "ann", age = 7}))
  log(string.gsub("abc", "()", "%1"))
end`
	res := dry(t, src, DefaultSampleRequest())
	want := []string{
		"5 7", "3 4", "nil", "2 2", "4 4", "1 0", "1 9 key value", "trim me", "quick", "(a(b)c)", "quick",
		"3 5", "abc", "2024 01 02", "test", "FF Hello b2", "1 10", "a1,b2 4", "hell0 world 1", "%a%b%c 3",
		"abc 2", "baa 1", "-a-b-c- 4", "world hello 1", "ann is 7 2", "1a2b3c4 4",
	}
	if got := messages(res.Logs); !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				t.Errorf("line %d: got %q, want %q", i, g, w)
			}
		}
	}
	for _, tc := range []struct{ call, want string }{
		{`string.find("abc", "[a-")`, "malformed pattern (missing ']')"},
		{`string.find("abc", "a%")`, "malformed pattern (ends with '%')"},
		{`string.find("abc", "(")`, "unfinished capture"},
		{`string.gsub("abc", "b", "%2")`, "invalid capture index"},
		{`string.match("abc", "%1")`, "invalid capture index"},
		{`string.find("abc", "%b")`, "unbalanced pattern"},
	} {
		verr := mustReject(t, Validate("function envoy_on_request(h)\n  local x = "+tc.call+"\nend", DefaultLimits()))
		if verr.Phase != PhaseRuntime || verr.Line != 2 || !strings.Contains(verr.Msg, tc.want) {
			t.Errorf("%s: got %#v, want %q", tc.call, verr, tc.want)
		}
	}
}

// A backtracking pattern that would run for hours is stopped by the step budget. The time limit is raised
// so that a loaded machine cannot make the wall clock stop it first: the budget is what is tested here.
func TestPathologicalPatternIsBounded(t *testing.T) {
	lim := DefaultLimits()
	lim.Timeout = 10 * time.Minute
	verr := mustReject(t, Validate(`function envoy_on_request(h)
  local s = ("a"):rep(20000)
  local x = s:find(".-.-.-b")
end`, lim))
	if verr.Phase != PhaseLimit || verr.Line != 3 || !strings.Contains(verr.Msg, "pattern-matching steps") {
		t.Errorf("got %#v", verr)
	}
}
