package luafilters

import (
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// headersFromTable reads the {name = value | {values...}} tables respond() and httpCall() take.
// Lua tables have no order, so fields are sorted by name to keep dry runs deterministic.
func (s *sandbox) headersFromTable(fn string, t *lua.LTable) *headerMap {
	h := &headerMap{}
	value := func(name string, v lua.LValue) {
		switch v := v.(type) {
		case lua.LString, lua.LNumber:
			if !validHeaderValue(v.String()) {
				s.apiErrorf("%s(): header %q: value contains CR, LF or NUL", fn, name)
			}
			h.add(name, v.String())
		default:
			s.apiErrorf("%s(): header %q has a %s value; use a string or a table of strings", fn, name, v.Type())
		}
	}
	t.ForEach(func(k, v lua.LValue) {
		var name string
		switch k := k.(type) {
		case lua.LString, lua.LNumber:
			name = strings.ToLower(k.String())
		default:
			s.apiErrorf("%s(): header names must be strings, got a %s", fn, k.Type())
		}
		if !isToken(strings.TrimPrefix(name, ":")) {
			s.apiErrorf("%s(): %q is not a valid header name", fn, name)
		}
		if list, ok := v.(*lua.LTable); ok {
			for i := 1; i <= list.Len(); i++ {
				value(name, list.RawGetInt(i))
			}
			return
		}
		value(name, v)
	})
	sort.SliceStable(h.entries, func(i, j int) bool { return h.entries[i].Name < h.entries[j].Name })
	return h
}

// httpCallOptions are the keys Envoy accepts in httpCall()'s options table.
var httpCallOptions = map[string]bool{
	"asynchronous": true, "timeout_ms": true, "trace_sampled": true,
	"return_duplicate_headers": true, "send_xff": true,
}

// handleHTTPCall checks the call exactly as Envoy does, records it, and then answers as Envoy
// does when the call fails: the mock never opens a connection from the control plane, and
// Envoy's own failure reply ({":status" = "503"}, "upstream failure") is the one answer every
// script must already handle. Asynchronous calls return nothing, as in Envoy.
func handleHTTPCall(s *sandbox, o *object) int {
	cluster := s.argString("httpCall", 1)
	h := s.headersFromTable("httpCall", s.argTable("httpCall", 2))
	s.optString("httpCall", 3) // the body: optional, but a string when given
	call := HTTPCall{Cluster: cluster, Line: currentLine(s.L)}
	if opts, ok := s.argAt(4).(*lua.LTable); ok {
		opts.ForEach(func(k, v lua.LValue) {
			key, ok := k.(lua.LString)
			if !ok || !httpCallOptions[string(key)] {
				s.apiErrorf("%q is not valid key for httpCall() options (valid: asynchronous, timeout_ms, trace_sampled, return_duplicate_headers, send_xff)", k.String())
			}
			switch key {
			case "asynchronous":
				call.Asynchronous = lua.LVAsBool(v)
			case "timeout_ms":
				n, ok := v.(lua.LNumber)
				if !ok || n != lua.LNumber(int64(n)) {
					s.apiErrorf("httpCall() option 'timeout_ms' must be an integer")
				}
				call.TimeoutMS = int64(n)
			}
		})
	} else {
		if s.present(5) {
			if _, ok := s.argAt(5).(lua.LBool); !ok {
				s.apiErrorf("http call asynchronous flag must be 'true', 'false', or empty")
			}
		}
		call.TimeoutMS = s.argInt("httpCall", 4)
		call.Asynchronous = lua.LVAsBool(s.argAt(5))
	}
	if call.TimeoutMS < 0 {
		s.apiErrorf("http call timeout must be >= 0")
	}
	call.Method, call.Path, call.Authority = first(h.values(":method")), first(h.values(":path")), first(h.values(":authority"))
	if call.Method == "" || call.Path == "" || call.Authority == "" {
		s.apiErrorf("http call headers must include ':path', ':method', and ':authority'")
	}
	if len(s.res.HTTPCalls) < maxRecordedCalls {
		s.res.HTTPCalls = append(s.res.HTTPCalls, call)
	} else if !s.callsDropped {
		s.callsDropped = true
		s.note("dynup: more than %d httpCall() calls; the rest are not listed", maxRecordedCalls)
	}
	if call.Asynchronous {
		return 0
	}
	reply := s.L.NewTable()
	reply.RawSetString(":status", lua.LString("503"))
	s.L.Push(reply)
	s.L.Push(lua.LString("upstream failure"))
	return 2
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
