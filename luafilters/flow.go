package luafilters

import (
	lua "github.com/yuin/gopher-lua"
)

// Directions of a flow.
const (
	dirRequest  = "request"
	dirResponse = "response"
)

// flow is one direction of the stream as one entry point sees it: its headers, its body, and
// the state machine Envoy keeps for body access. The sample is complete up front, so the mock
// replays Envoy's decisions rather than its waiting: a request with a body arrives as headers
// then one data frame; one without a body ends with its headers.
type flow struct {
	dir   string
	label string // the handle's name in Envoy's docs: request_handle / response_handle
	entry string // envoy_on_request / envoy_on_response

	headers *headerMap
	body    string
	// hasBody: data frames follow the headers. Without them body() returns nil.
	hasBody bool
	// wrapped: body(true) on a bodyless stream created an empty body.
	wrapped bool
	// sawBody: the body's data went past the script (Envoy's saw_body_).
	sawBody bool
	// buffered: body() buffered the whole body (Envoy's buffered_body_).
	buffered bool
	// continued: the headers were passed on to the next filter, which happens when the script
	// starts streaming the body (bodyChunks(), trailers()). Afterwards Envoy refuses header
	// changes and respond().
	continued bool

	changes *HeaderChanges
	bodyOut **string
	// cache holds the wrapper each accessor returns: Envoy hands out the same object on repeated
	// calls (request_handle:headers() == request_handle:headers()).
	cache map[string]lua.LValue
}

func newFlow(dir string, headers *headerMap, body string, changes *HeaderChanges, bodyOut **string) *flow {
	f := &flow{
		dir:     dir,
		label:   dir + "_handle",
		entry:   "envoy_on_" + dir,
		headers: headers,
		body:    body,
		hasBody: body != "",
		changes: changes,
		bodyOut: bodyOut,
		cache:   map[string]lua.LValue{},
	}
	headers.fl = f
	return f
}

// cached returns the wrapper stored under key, creating it with mk on first use.
func (f *flow) cached(key string, mk func() lua.LValue) lua.LValue {
	if v, ok := f.cache[key]; ok {
		return v
	}
	v := mk()
	f.cache[key] = v
	return v
}
