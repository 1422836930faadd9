package luafilters

import "fmt"

// Phases of a ValidationError, i.e. which check rejected the snippet. The admin API shows the
// phase so that users can tell "my Lua does not parse" from "my Lua uses the wrong API".
const (
	// PhaseSize: the source is larger than Limits.MaxSourceBytes.
	PhaseSize = "size"
	// PhaseSyntax: the source is not valid Lua 5.1.
	PhaseSyntax = "syntax"
	// PhaseEntryPoint: neither envoy_on_request nor envoy_on_response is a global function.
	PhaseEntryPoint = "entry-point"
	// PhaseRuntime: the Lua code raised an error (nil index, error(), bad arithmetic...).
	PhaseRuntime = "runtime"
	// PhaseAPI: the snippet used something Envoy does not offer, or used Envoy's API wrongly
	// (unknown method, bad argument, OpenResty's ngx, a sandboxed-out library...).
	PhaseAPI = "api"
	// PhaseLimit: the run exceeded Limits.MaxInstructions or Limits.Timeout.
	PhaseLimit = "limit"
	// PhaseInternal: dynup's mock itself failed. It is a dynup bug, never the snippet's fault;
	// the fuzz test asserts it never happens.
	PhaseInternal = "internal"
)

// ValidationError explains why a snippet was rejected.
type ValidationError struct {
	// Line is the 1-based line in the snippet, or 0 when no line applies (size, entry point).
	Line int `json:"line"`
	// Phase is one of the Phase* constants.
	Phase string `json:"phase"`
	// Msg is the human-readable reason, without the line prefix.
	Msg string `json:"message"`
}

// Error renders "line 3: request_handle:foo is not part of Envoy's Lua API", or just the message
// when the line is unknown.
func (e *ValidationError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}
