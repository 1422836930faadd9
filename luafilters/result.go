package luafilters

// Actions a DryRunResult can report.
const (
	// ActionContinue: Envoy passes the request on to the next filter and the upstream.
	ActionContinue = "continue"
	// ActionRespond: the snippet called handle:respond(); Envoy answers locally and the request
	// never reaches the upstream.
	ActionRespond = "respond"
)

// DryRunResult reports what Envoy would do with the sample request (and response).
type DryRunResult struct {
	Action string `json:"action"`
	// EntryPoints lists the entry points the snippet defines (envoy_on_request, envoy_on_response),
	// i.e. the directions Envoy will run it on.
	EntryPoints []string `json:"entry_points"`
	// Respond is set when Action is "respond".
	Respond *LocalReply `json:"respond,omitempty"`
	// RequestHeaders lists the changes envoy_on_request made to the request headers, in order.
	RequestHeaders HeaderChanges `json:"request_headers"`
	// ResponseHeaders lists the changes envoy_on_response made to the response headers.
	ResponseHeaders HeaderChanges `json:"response_headers"`
	// RequestBody / ResponseBody hold the rewritten body when the snippet called setBytes().
	RequestBody  *string `json:"request_body,omitempty"`
	ResponseBody *string `json:"response_body,omitempty"`
	// ResponseRan tells whether envoy_on_response was executed (it is not when the snippet has
	// none, or when envoy_on_request answered locally).
	ResponseRan bool `json:"response_ran"`
	// HTTPCalls lists the handle:httpCall() attempts; the mock never contacts a cluster.
	HTTPCalls []HTTPCall `json:"http_calls,omitempty"`
	// DynamicMetadata is what the snippet stored with streamInfo():dynamicMetadata():set(),
	// keyed by filter name then key. Other filters and access logs can read it in Envoy.
	DynamicMetadata map[string]map[string]any `json:"dynamic_metadata,omitempty"`
	// Logs holds handle:log*() and print() output, in order.
	Logs []LogLine `json:"logs"`
	// Notes records effects that have no field of their own (clearRouteCache(),
	// setUpstreamOverrideHost(), ...).
	Notes []string `json:"notes,omitempty"`
}

// LocalReply is the response a snippet produced with handle:respond(headers, body).
type LocalReply struct {
	Status int `json:"status"`
	// Headers excludes ":status"; names are lower-cased as Envoy does.
	Headers []Header `json:"headers"`
	Body    string   `json:"body"`
}

// Header is one header field. A list of them (rather than a map) keeps order and repeats.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Header change operations.
const (
	OpAdd                  = "add"
	OpReplace              = "replace"
	OpRemove               = "remove"
	OpSetHTTP1ReasonPhrase = "set_http1_reason_phrase"
)

// HeaderChange is one mutation a snippet made to a header map.
type HeaderChange struct {
	Op    string `json:"op"`
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
	// Line is the snippet line that made the change (0 when Envoy made it implicitly, e.g. the
	// content-length update after body():setBytes()).
	Line int `json:"line,omitempty"`
}

// HeaderChanges is an ordered list of header mutations.
type HeaderChanges []HeaderChange

// HTTPCall is one handle:httpCall() the snippet attempted.
type HTTPCall struct {
	Cluster      string `json:"cluster"`
	Method       string `json:"method"`
	Path         string `json:"path"`
	Authority    string `json:"authority"`
	Asynchronous bool   `json:"asynchronous"`
	TimeoutMS    int64  `json:"timeout_ms"`
	Line         int    `json:"line,omitempty"`
}

// LogLine is one message the snippet logged.
type LogLine struct {
	// Level is trace, debug, info, warn, error, critical (Envoy's levels), or print for print().
	Level   string `json:"level"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
}
