package luafilters

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// headerMap models Envoy's HTTP header map: lower-case names, ordered, repeatable.
type headerMap struct {
	entries []Header
	// iterating is set while a pairs() loop over the map has not finished. Envoy refuses
	// modifications meanwhile, and also after a loop left early with break.
	iterating bool
	// fl is the flow whose headers these are; nil for header maps that are not the stream's.
	fl *flow
}

func (h *headerMap) values(name string) []string {
	var out []string
	for _, e := range h.entries {
		if e.Name == name {
			out = append(out, e.Value)
		}
	}
	return out
}

func (h *headerMap) add(name, value string) {
	h.entries = append(h.entries, Header{name, value})
}

// remove deletes every field called name.
func (h *headerMap) remove(name string) {
	kept := h.entries[:0]
	for _, e := range h.entries {
		if e.Name != name {
			kept = append(kept, e)
		}
	}
	h.entries = kept
}

// set replaces all fields called name by one, as Envoy's setCopy() does today.
func (h *headerMap) set(name, value string) {
	h.remove(name)
	h.add(name, value)
}

// headersClass is Envoy's header object API (headers() and trailers()).
var headersClass = func() *class {
	c := newClass("headers", map[string]method{
		"get":                  headersGet,
		"getAtIndex":           headersGetAtIndex,
		"getNumValues":         headersGetNumValues,
		"add":                  headersAdd,
		"replace":              headersReplace,
		"remove":               headersRemove,
		"setHttp1ReasonPhrase": headersSetReasonPhrase,
	}, nil)
	c.pairs = headersPairs
	c.hints = map[string]string{
		"set":    "use headers:replace(name, value) (or headers:add() to append a value)",
		"del":    "use headers:remove(name)",
		"delete": "use headers:remove(name)",
		"getAll": "use headers:getNumValues(name) and headers:getAtIndex(name, i) (i from 0)",
		"clear":  "remove fields one by one with headers:remove(name)",
	}
	return c
}()

func headerArg(s *sandbox, fn string, n int) string {
	return strings.ToLower(s.argString(fn, n))
}

// headersGet joins repeated fields with "," as Envoy does.
func headersGet(s *sandbox, o *object) int {
	name := headerArg(s, "get", 1)
	vals := o.val.(*headerMap).values(name)
	if len(vals) == 0 {
		if name == "host" {
			s.hint(`headers:get("host") returned nil: Envoy exposes the Host header as ":authority"`)
		}
		return 0
	}
	if len(vals) > 1 {
		n := len(vals) - 1
		for _, v := range vals {
			n += len(v)
		}
		s.charge(int64(n))
	}
	s.L.Push(lua.LString(strings.Join(vals, ",")))
	return 1
}

// headersGetAtIndex uses a 0-based index, like Envoy (not Lua's usual 1).
func headersGetAtIndex(s *sandbox, o *object) int {
	name := headerArg(s, "getAtIndex", 1)
	i := s.argInt("getAtIndex", 2)
	vals := o.val.(*headerMap).values(name)
	if i < 0 || i >= int64(len(vals)) {
		return 0
	}
	s.L.Push(lua.LString(vals[i]))
	return 1
}

func headersGetNumValues(s *sandbox, o *object) int {
	s.L.Push(lua.LNumber(len(o.val.(*headerMap).values(headerArg(s, "getNumValues", 1)))))
	return 1
}

func headersAdd(s *sandbox, o *object) int {
	h := o.val.(*headerMap)
	name, value := headerArg(s, "add", 1), s.argString("add", 2)
	s.checkModifiable(o, name, value)
	h.add(name, value)
	s.recordHeaderChange(h, OpAdd, name, value)
	return 0
}

func headersReplace(s *sandbox, o *object) int {
	h := o.val.(*headerMap)
	name, value := headerArg(s, "replace", 1), s.argString("replace", 2)
	s.checkModifiable(o, name, value)
	h.set(name, value)
	s.recordHeaderChange(h, OpReplace, name, value)
	return 0
}

func headersRemove(s *sandbox, o *object) int {
	h := o.val.(*headerMap)
	name := headerArg(s, "remove", 1)
	s.checkModifiable(o, name, "")
	h.remove(name)
	s.recordHeaderChange(h, OpRemove, name, "")
	return 0
}

// headersSetReasonPhrase only makes sense on response headers; Envoy silently ignores it on
// request headers, the mock reports it because it is certainly a mistake.
func headersSetReasonPhrase(s *sandbox, o *object) int {
	h := o.val.(*headerMap)
	phrase := s.argString("setHttp1ReasonPhrase", 1)
	if h.fl == nil || h.fl.dir != dirResponse {
		s.apiErrorf("%s:setHttp1ReasonPhrase() only works on response headers (envoy_on_response)", o.label)
	}
	s.checkModifiable(o, "", phrase)
	s.recordHeaderChange(h, OpSetHTTP1ReasonPhrase, "", phrase)
	return 0
}

// checkModifiable applies Envoy's rules for changing a header map, plus header syntax checks
// Envoy would only enforce later, in the codec, with a reset stream.
func (s *sandbox) checkModifiable(o *object, name, value string) {
	h := o.val.(*headerMap)
	if h.iterating {
		s.apiErrorf("%s cannot be modified while iterating: finish the pairs() loop first (and do not leave it with break)", o.label)
	}
	if h.fl != nil && h.fl.continued {
		s.apiErrorf("%s can no longer be modified: the headers were already sent on when %s started streaming the body (bodyChunks() or trailers())", o.label, h.fl.entry)
	}
	if name != "" && !isToken(strings.TrimPrefix(name, ":")) {
		s.apiErrorf("%q is not a valid header name", name)
	}
	if !validHeaderValue(value) {
		s.apiErrorf("header value for %q contains CR, LF or NUL", name)
	}
}

func (s *sandbox) recordHeaderChange(h *headerMap, op, name, value string) {
	if h.fl == nil {
		return
	}
	if len(*h.fl.changes) >= maxRecordedChanges {
		if !s.changesDropped {
			s.changesDropped = true
			s.note("dynup: more than %d header changes; the rest are applied but not listed", maxRecordedChanges)
		}
		return
	}
	*h.fl.changes = append(*h.fl.changes, HeaderChange{Op: op, Name: name, Value: value, Line: currentLine(s.L)})
}

// headersPairs implements pairs(headers): it snapshots the fields and returns an iterator that
// yields name, value for each, one field per repeated name.
func headersPairs(s *sandbox, o *object) int {
	h := o.val.(*headerMap)
	if h.iterating {
		s.apiErrorf("cannot create a second iterator over %s before completing the first", o.label)
	}
	s.charge(int64(len(h.entries)) * valueCost)
	h.iterating = true
	snapshot := append([]Header(nil), h.entries...)
	i := 0
	s.L.Push(s.L.NewFunction(func(L *lua.LState) int {
		if i >= len(snapshot) {
			h.iterating = false
			return 0
		}
		e := snapshot[i]
		i++
		L.Push(lua.LString(e.Name))
		L.Push(lua.LString(e.Value))
		return 2
	}))
	return 1
}
