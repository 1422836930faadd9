package luafilters

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The stream handle passed to envoy_on_request / envoy_on_response, following the method list of
// Envoy's "Stream handle API" documentation. The response handle lacks respond(), as in Envoy.
var (
	requestHandleClass  = newHandleClass(dirRequest)
	responseHandleClass = newHandleClass(dirResponse)
)

func newHandleClass(dir string) *class {
	methods := map[string]method{
		"headers":                 handleHeaders,
		"body":                    handleBody,
		"bodyChunks":              handleBodyChunks,
		"trailers":                handleTrailers,
		"metadata":                handleMetadata,
		"streamInfo":              handleStreamInfo,
		"connection":              handleConnection,
		"connectionStreamInfo":    handleConnectionStreamInfo,
		"httpCall":                handleHTTPCall,
		"importPublicKey":         handleImportPublicKey,
		"verifySignature":         handleVerifySignature,
		"base64Escape":            handleBase64Escape,
		"timestamp":               handleTimestamp,
		"timestampString":         handleTimestampString,
		"setUpstreamOverrideHost": handleSetUpstreamOverrideHost,
		"clearRouteCache":         handleClearRouteCache,
		"filterContext":           handleFilterContext,
	}
	if dir == dirRequest {
		methods["respond"] = handleRespond
	}
	c := newClass(dir+"_handle", methods, map[string]*class{
		"headers":              headersClass,
		"trailers":             headersClass,
		"body":                 bufferClass,
		"metadata":             routeMetadataClass,
		"streamInfo":           streamInfoClass,
		"connection":           connectionClass,
		"connectionStreamInfo": connStreamInfoClass,
		"importPublicKey":      publicKeyClass,
	})
	respondHint := `to answer the request yourself use request_handle:respond({[":status"] = "403"}, "body")`
	readHint := "read request data with handle:headers():get(name), e.g. headers():get(\":path\")"
	newer := "it exists only in Envoy builds newer than the documented API dynup validates against"
	c.hints = map[string]string{
		"requestInfo":              "requestInfo() was renamed streamInfo()",
		"log":                      "Envoy has no generic log(); use logTrace, logDebug, logInfo, logWarn, logErr or logCritical",
		"exit":                     respondHint,
		"say":                      respondHint,
		"redirect":                 respondHint + ` with a "location" header`,
		"header":                   readHint,
		"getHeader":                readHint,
		"get_headers":              readHint,
		"downstreamRequestHeaders": newer,
		"virtualHost":              newer,
		"route":                    newer,
		"stats":                    newer,
	}
	if dir == dirResponse {
		c.hints["respond"] = "respond() only works in envoy_on_request; in envoy_on_response change the upstream reply through response_handle:headers() and response_handle:body()"
	}
	return c
}

func (s *sandbox) cachedObject(f *flow, key string, c *class, val any) lua.LValue {
	return f.cached(key, func() lua.LValue { return s.newObject(c, "", val) })
}

func handleHeaders(s *sandbox, o *object) int {
	f := o.val.(*flow)
	s.L.Push(s.cachedObject(f, "headers", headersClass, f.headers))
	return 1
}

// handleBody returns the whole body, or nil for a stream without one unless always_wrap_body.
func handleBody(s *sandbox, o *object) int {
	f := o.val.(*flow)
	wrap := s.optBool("body", 1)
	if f.sawBody && !f.buffered {
		s.apiErrorf("cannot call body() after the body has been streamed (bodyChunks() or trailers() came first)")
	}
	if !f.hasBody && !f.wrapped {
		if !wrap {
			s.hint("body() returned nil because the %s has no body; body(true) always returns a buffer", f.dir)
			return 0 // Envoy: no body, nil
		}
		f.wrapped = true
	}
	if f.hasBody {
		f.buffered, f.sawBody = true, true
	}
	s.L.Push(s.cachedObject(f, "body", bufferClass, f))
	return 1
}

// handleBodyChunks returns an iterator over the body's chunks (one chunk in the mock). Receiving
// a chunk lets the headers continue, as in Envoy.
func handleBodyChunks(s *sandbox, o *object) int {
	f := o.val.(*flow)
	if f.sawBody {
		s.apiErrorf("cannot call bodyChunks() after body processing has begun (body(), trailers() or an earlier bodyChunks() loop)")
	}
	delivered := false
	s.L.Push(s.L.NewFunction(func(L *lua.LState) int {
		if !f.hasBody || delivered {
			return 0
		}
		delivered = true
		f.sawBody, f.continued = true, true
		L.Push(s.newObject(bufferClass, "chunk", f))
		return 1
	}))
	return 1
}

// handleTrailers returns nil: samples have no trailers. Waiting for them lets body data (and
// the headers) go on, as in Envoy.
func handleTrailers(s *sandbox, o *object) int {
	f := o.val.(*flow)
	if f.hasBody && !f.sawBody {
		f.sawBody, f.continued = true, true
	}
	return 0
}

func handleMetadata(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(o.val.(*flow), "metadata", routeMetadataClass, nil))
	return 1
}

func handleStreamInfo(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(o.val.(*flow), "streamInfo", streamInfoClass, nil))
	return 1
}

func handleConnection(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(o.val.(*flow), "connection", connectionClass, nil))
	return 1
}

func handleConnectionStreamInfo(s *sandbox, o *object) int {
	s.L.Push(s.cachedObject(o.val.(*flow), "connectionStreamInfo", connStreamInfoClass, nil))
	return 1
}

// handleRespond records the local reply and ends the script, as Envoy does (it never resumes
// the coroutine after respond()).
func handleRespond(s *sandbox, o *object) int {
	f := o.val.(*flow)
	if f.continued {
		s.apiErrorf("respond() cannot be called after the headers have been continued (e.g. inside a bodyChunks() loop); decide before streaming the body")
	}
	h := s.headersFromTable("respond", s.argTable("respond", 1))
	body, hasBody := s.optString("respond", 2)
	statuses := h.values(":status")
	if len(statuses) == 0 {
		s.apiErrorf(`respond() headers must set ":status", e.g. {[":status"] = "403"}`)
	}
	status, err := strconv.Atoi(statuses[0])
	if err != nil || len(statuses) > 1 || status < 200 || status >= 600 {
		s.apiErrorf(":status must be between 200-599 (got %q)", statuses[0])
	}
	h.remove(":status")
	if hasBody {
		h.set("content-length", strconv.Itoa(len(body)))
	}
	s.res.Action = ActionRespond
	s.res.Respond = &LocalReply{Status: status, Headers: append([]Header{}, h.entries...), Body: body}
	s.budget.halt(errStopped)
	return 0
}

func handleBase64Escape(s *sandbox, o *object) int {
	in := s.argString("base64Escape", 1)
	s.charge(int64(base64.StdEncoding.EncodedLen(len(in))))
	s.L.Push(lua.LString(base64.StdEncoding.EncodeToString([]byte(in))))
	return 1
}

// Values of the EnvoyTimestampResolution global, as Envoy's enum.
const (
	resolutionMillisecond = 0
	resolutionMicrosecond = 1
)

func handleTimestamp(s *sandbox, o *object) int {
	if s.argAt(1) != lua.LNil && s.argInt("timestamp", 1) != resolutionMillisecond {
		s.apiErrorf("timestamp format must be EnvoyTimestampResolution.MILLISECOND")
	}
	s.L.Push(lua.LNumber(time.Now().UnixMilli()))
	return 1
}

func handleTimestampString(s *sandbox, o *object) int {
	res := int64(resolutionMillisecond)
	if s.argAt(1) != lua.LNil {
		res = s.argInt("timestampString", 1)
	}
	switch res {
	case resolutionMillisecond:
		s.L.Push(lua.LString(strconv.FormatInt(time.Now().UnixMilli(), 10)))
	case resolutionMicrosecond:
		s.L.Push(lua.LString(strconv.FormatInt(time.Now().UnixMicro(), 10)))
	default:
		s.apiErrorf("timestamp format must be MILLISECOND or MICROSECOND")
	}
	return 1
}

func handleSetUpstreamOverrideHost(s *sandbox, o *object) int {
	host := s.argString("setUpstreamOverrideHost", 1)
	strict := lua.LVAsBool(s.argAt(2))
	if net.ParseIP(host) == nil {
		s.apiErrorf("setUpstreamOverrideHost(%q): host must be a valid IP address", host)
	}
	s.note("line %d: setUpstreamOverrideHost(%s, strict=%v): Envoy would try that upstream host first", currentLine(s.L), host, strict)
	return 0
}

func handleClearRouteCache(s *sandbox, o *object) int {
	s.note("line %d: clearRouteCache(): Envoy would pick the route again after this filter", currentLine(s.L))
	return 0
}

// handleFilterContext returns the route's filter_context as a table; dry runs have none.
func handleFilterContext(s *sandbox, o *object) int {
	s.L.Push(o.val.(*flow).cached("filterContext", func() lua.LValue { return s.L.NewTable() }))
	return 1
}

func (s *sandbox) note(format string, args ...any) {
	if len(s.res.Notes) < maxNotes {
		s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, args...))
	}
}
