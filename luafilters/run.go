package luafilters

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// Validate parses src as Lua 5.1, requires envoy_on_request and/or envoy_on_response, checks
// the method names used on the stream handle, and runs each defined entry point in the sandbox
// against DefaultSampleRequest and DefaultSampleResponse. It returns nil or a *ValidationError.
//
// Both entry points always run, even when envoy_on_request answers with respond(), so that
// envoy_on_response is exercised too.
func Validate(src string, lim Limits) error {
	if _, err := execute(src, DefaultSampleRequest(), DefaultSampleResponse(), lim, true); err != nil {
		return err
	}
	return nil
}

// EntryPoints validates src exactly as Validate does and, when it passes, returns the entry points it
// defines, in Envoy's order (envoy_on_request before envoy_on_response). Translation uses them to
// call only what a snippet has.
func EntryPoints(src string, lim Limits) ([]string, error) {
	res, err := execute(src, DefaultSampleRequest(), DefaultSampleResponse(), lim, true)
	if err != nil {
		return nil, err
	}
	return res.EntryPoints, nil
}

// DryRun runs src against req and, when the snippet has envoy_on_response and envoy_on_request
// did not answer locally, against resp (DefaultSampleResponse when nil), and reports what Envoy
// would do.
//
// Errors: a problem with req or resp is a plain error; a problem with the snippet is a
// *ValidationError. When the snippet failed while running (phases runtime, api, limit) the
// partial result is returned alongside the error, so callers can show the logs leading up to it.
func DryRun(src string, req SampleRequest, resp *SampleResponse, lim Limits) (*DryRunResult, error) {
	r := DefaultSampleResponse()
	if resp != nil {
		r = *resp
	}
	res, err := execute(src, req, r, lim, false)
	if err != nil {
		return res, err
	}
	return res, nil
}

// execute is the pipeline behind Validate and DryRun: size, syntax, static API check, then the
// sandboxed run. runBoth makes envoy_on_response run even after a local reply (Validate).
func execute(src string, req SampleRequest, resp SampleResponse, lim Limits, runBoth bool) (res *DryRunResult, err error) {
	lim = lim.withDefaults()
	if len(src) > lim.MaxSourceBytes {
		return nil, &ValidationError{Phase: PhaseSize, Msg: fmt.Sprintf(
			"snippet is %d bytes; the limit is %d bytes", len(src), lim.MaxSourceBytes)}
	}
	reqHeaders, err := req.headerMap()
	if err != nil {
		return nil, err
	}
	respHeaders, err := resp.headerMap()
	if err != nil {
		return nil, err
	}
	// A panic here is a bug in dynup (or gopher-lua), never a reason to take the control plane
	// down with it; it is reported as PhaseInternal so it stays visible.
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &ValidationError{Phase: PhaseInternal, Msg: fmt.Sprintf("internal error in dynup's Lua checker: %v", p)}
		}
	}()
	chunk, verr := parseSnippet(src)
	if verr != nil {
		return nil, verr
	}
	if i := strings.Index(src, concatFunc); i >= 0 {
		return nil, &ValidationError{Line: strings.Count(src[:i], "\n") + 1, Phase: PhaseAPI,
			Msg: concatFunc + " is a name reserved by dynup's sandbox"}
	}
	if verr := staticCheck(chunk); verr != nil {
		return nil, verr
	}
	rewriteConcat(chunk)
	proto, err := lua.Compile(chunk, chunkName)
	if err != nil {
		var ce *lua.CompileError
		if errors.As(err, &ce) {
			return nil, &ValidationError{Line: ce.Line, Phase: PhaseSyntax, Msg: ce.Message}
		}
		return nil, &ValidationError{Phase: PhaseSyntax, Msg: err.Error()}
	}

	ctx, cancel := context.WithTimeout(context.Background(), lim.Timeout)
	defer cancel()
	res = &DryRunResult{
		Action:          ActionContinue,
		RequestHeaders:  HeaderChanges{},
		ResponseHeaders: HeaderChanges{},
		Logs:            []LogLine{},
	}
	stream := &streamState{tls: req.TLS, host: hostOnly(first(reqHeaders.values(":authority"))), dynMeta: map[string]map[string]any{}}
	s := newSandbox(ctx, lim, res, stream)
	defer s.close()

	s.L.Push(s.L.NewFunctionFromProto(proto))
	if verr := s.failure(s.L.PCall(0, 0, nil), lim); verr != nil {
		return res, verr
	}
	onRequest, onResponse, verr := entryPoints(s.L.G.Global, src)
	if verr != nil {
		return nil, verr
	}
	for i, fn := range []*lua.LFunction{onRequest, onResponse} {
		if fn != nil {
			res.EntryPoints = append(res.EntryPoints, entryNames[i])
		}
	}
	if onRequest != nil {
		f := newFlow(dirRequest, reqHeaders, req.Body, &res.RequestHeaders, &res.RequestBody)
		if verr := s.runEntry(f, onRequest, requestHandleClass, lim); verr != nil {
			return res, verr
		}
	}
	if onResponse != nil && (runBoth || res.Action == ActionContinue) {
		f := newFlow(dirResponse, respHeaders, resp.Body, &res.ResponseHeaders, &res.ResponseBody)
		res.ResponseRan = true
		if verr := s.runEntry(f, onResponse, responseHandleClass, lim); verr != nil {
			return res, verr
		}
	}
	return res, nil
}

// runEntry calls one entry point with a fresh handle and kills the handle's objects afterwards.
func (s *sandbox) runEntry(f *flow, fn *lua.LFunction, cls *class, lim Limits) *ValidationError {
	s.flow = f
	s.scope = &scope{alive: true, entry: f.entry}
	s.budget.resume()
	handle := s.newObject(cls, f.label, f)
	s.L.Push(fn)
	s.L.Push(handle)
	err := s.L.PCall(1, 0, nil)
	s.scope.alive = false
	return s.failure(err, lim)
}

// failure classifies the outcome of a protected call. Go-side records win over the Lua error:
// the snippet may have caught the Lua error with pcall(), and the error a stopped script raises
// last is not the interesting one.
func (s *sandbox) failure(err error, lim Limits) *ValidationError {
	if s.violation != nil {
		return s.violation
	}
	if verr := s.budget.limitError(lim); verr != nil {
		return verr
	}
	if err == nil || s.budget.halted == errStopped {
		return nil // finished, or stopped on purpose by respond()
	}
	var apiErr *lua.ApiError
	if !errors.As(err, &apiErr) || apiErr.Type == lua.ApiErrorPanic {
		return &ValidationError{Phase: PhaseInternal, Msg: "internal error in dynup's Envoy mock: " + err.Error()}
	}
	msg, ok := apiErr.Object.(lua.LString)
	if !ok {
		msg = lua.LString(fmt.Sprintf("error raised with a %s value instead of a string", apiErr.Object.Type()))
	}
	line, text := splitErrorLine(string(msg), apiErr.StackTrace)
	if len(s.hints) > 0 {
		text += " (note: " + strings.Join(s.hints, "; ") + ")"
	}
	return &ValidationError{Line: line, Phase: PhaseRuntime, Msg: text}
}

// parseSnippet parses src, turning gopher-lua's parse errors into syntax ValidationErrors.
func parseSnippet(src string) ([]ast.Stmt, *ValidationError) {
	chunk, err := parse.Parse(strings.NewReader(src), chunkName)
	if err == nil {
		return chunk, nil
	}
	var pe *parse.Error
	if !errors.As(err, &pe) {
		return nil, &ValidationError{Phase: PhaseSyntax, Msg: err.Error()}
	}
	if pe.Pos.Line <= 0 { // gopher-lua reports positions at end of input as -1
		msg := pe.Message + " at the end of the snippet"
		if pe.Message == "syntax error" {
			msg += " (a missing 'end' or closing bracket?)"
		}
		return nil, &ValidationError{Line: lastLine(src), Phase: PhaseSyntax, Msg: msg}
	}
	msg := pe.Message
	if pe.Token != "" {
		msg = fmt.Sprintf("%s near '%s'", msg, pe.Token)
	}
	return nil, &ValidationError{Line: pe.Pos.Line, Phase: PhaseSyntax, Msg: msg}
}

var entryNames = []string{"envoy_on_request", "envoy_on_response"}

var localEntry = regexp.MustCompile(`\blocal\s+(?:function\s+)?(envoy_on_(?:request|response))\b`)

// entryPoints fetches the entry functions once the chunk has run, explaining the usual reasons
// for finding none.
func entryPoints(g *lua.LTable, src string) (onRequest, onResponse *lua.LFunction, verr *ValidationError) {
	for i, name := range entryNames {
		v := g.RawGetString(name)
		if v == lua.LNil {
			continue
		}
		fn, ok := v.(*lua.LFunction)
		if !ok {
			return nil, nil, &ValidationError{Phase: PhaseEntryPoint, Msg: fmt.Sprintf("%s must be a function, not a %s", name, v.Type())}
		}
		if i == 0 {
			onRequest = fn
		} else {
			onResponse = fn
		}
	}
	if onRequest != nil || onResponse != nil {
		return onRequest, onResponse, nil
	}
	msg := "the snippet defines neither envoy_on_request(request_handle) nor envoy_on_response(response_handle) as a global function"
	if m := localEntry.FindStringSubmatchIndex(src); m != nil {
		name := src[m[2]:m[3]]
		return nil, nil, &ValidationError{Line: strings.Count(src[:m[0]], "\n") + 1, Phase: PhaseEntryPoint,
			Msg: fmt.Sprintf("%s is declared local, but Envoy only calls global functions: remove 'local'", name)}
	}
	var typo string
	g.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if _, isFn := v.(*lua.LFunction); !ok || !isFn || typo != "" {
			return
		}
		if alt := closestName(string(name), map[string]bool{entryNames[0]: true, entryNames[1]: true}); alt != "" {
			typo = fmt.Sprintf("; it defines %s, did you mean %s?", name, alt)
		}
	})
	return nil, nil, &ValidationError{Phase: PhaseEntryPoint, Msg: msg + typo}
}

// hostOnly strips the port from an authority.
func hostOnly(authority string) string {
	if host, _, err := net.SplitHostPort(authority); err == nil {
		return host
	}
	return authority
}
