package luafilters

import (
	"strconv"

	lua "github.com/yuin/gopher-lua"
)

// bufferClass is Envoy's buffer object API, returned by body() and by the bodyChunks() iterator.
// The mock delivers a body as a single chunk, so a chunk and the whole body are the same bytes.
var bufferClass = func() *class {
	c := newClass("body", map[string]method{
		"length":   bufferLength,
		"getBytes": bufferGetBytes,
		"setBytes": bufferSetBytes,
	}, nil)
	c.hints = map[string]string{
		"get":    "use body:getBytes(0, body:length())",
		"set":    "use body:setBytes(str)",
		"size":   "use body:length()",
		"len":    "use body:length()",
		"string": "use body:getBytes(0, body:length())",
	}
	return c
}()

func bufferLength(s *sandbox, o *object) int {
	s.L.Push(lua.LNumber(len(o.val.(*flow).body)))
	return 1
}

// bufferGetBytes copies length bytes from the 0-based index, with Envoy's bounds check.
func bufferGetBytes(s *sandbox, o *object) int {
	body := o.val.(*flow).body
	index, length := s.argInt("getBytes", 1), s.argInt("getBytes", 2)
	if index < 0 || length < 0 || index+length > int64(len(body)) {
		s.apiErrorf("getBytes(%d, %d): index/length must be >= 0 and (index + length) must be <= buffer size (%d)", index, length, len(body))
	}
	s.L.Push(lua.LString(body[index : index+length]))
	return 1
}

// bufferSetBytes replaces the body. Envoy then fixes content-length itself; the mock records
// that as a header change when the headers have not been sent on yet.
func bufferSetBytes(s *sandbox, o *object) int {
	f := o.val.(*flow)
	f.body = s.argString("setBytes", 1)
	out := f.body
	*f.bodyOut = &out
	if !f.continued {
		n := strconv.Itoa(len(f.body))
		f.headers.set("content-length", n)
		s.recordHeaderChange(f.headers, OpReplace, "content-length", n)
	}
	s.L.Push(lua.LNumber(len(f.body)))
	return 1
}
