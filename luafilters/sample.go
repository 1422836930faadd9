package luafilters

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SampleRequest is the downstream request a dry run feeds to envoy_on_request.
type SampleRequest struct {
	// Method defaults to GET.
	Method string `json:"method"`
	// Path is the request target including the query string (":path"); defaults to "/".
	Path string `json:"path"`
	// Headers are plain header fields. "host" becomes ":authority" as Envoy's HTTP/1 codec does
	// (default "example.com"). Pseudo-headers other than ":authority" are rejected: use Method and
	// Path.
	Headers map[string]string `json:"headers,omitempty"`
	// Body, when non-empty, makes the request carry data frames, which changes what body(),
	// bodyChunks() and trailers() do (see the package documentation).
	Body string `json:"body,omitempty"`
	// TLS makes the downstream connection a TLS one: connection():ssl() and
	// streamInfo():downstreamSslConnection() return an SSL object instead of nil.
	TLS bool `json:"tls,omitempty"`
}

// SampleResponse is the upstream response a dry run feeds to envoy_on_response.
type SampleResponse struct {
	// Status defaults to 200.
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
}

// Defaults used by Validate and by DryRun for missing fields.
const (
	defaultMethod    = "GET"
	defaultPath      = "/"
	defaultAuthority = "example.com"
)

// DefaultSampleRequest is what Validate runs envoy_on_request against: GET / with a Host header
// and no body.
func DefaultSampleRequest() SampleRequest {
	return SampleRequest{Method: defaultMethod, Path: defaultPath, Headers: map[string]string{"host": defaultAuthority}}
}

// DefaultSampleResponse is what Validate runs envoy_on_response against: a small 200 text reply,
// with a body because real upstream responses usually have one.
func DefaultSampleResponse() SampleResponse {
	return SampleResponse{
		Status:  200,
		Headers: map[string]string{"content-type": "text/plain"},
		Body:    "hello from upstream\n",
	}
}

// ErrBadSample wraps every problem with the caller's SampleRequest or SampleResponse, so the admin
// API can tell "your sample is malformed" from "your snippet is wrong" (a *ValidationError).
var ErrBadSample = errors.New("luafilters: bad sample")

func badSample(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSample, fmt.Sprintf(format, args...))
}

// requestHeaderMap builds the header map Envoy would hand to envoy_on_request: pseudo-headers
// first, then the caller's fields in name order (maps have no order of their own).
func (r SampleRequest) headerMap() (*headerMap, error) {
	method := r.Method
	if method == "" {
		method = defaultMethod
	}
	if !isToken(method) {
		return nil, badSample("method %q is not an HTTP token", method)
	}
	path := r.Path
	if path == "" {
		path = defaultPath
	}
	if (!strings.HasPrefix(path, "/") && path != "*") || strings.ContainsAny(path, " \t\r\n\x00") {
		return nil, badSample("path %q must start with '/' and contain no whitespace", path)
	}
	authority := defaultAuthority
	fields, err := sortedFields(r.Headers)
	if err != nil {
		return nil, err
	}
	rest := fields[:0]
	for _, f := range fields {
		switch f.Name {
		case "host", ":authority":
			authority = f.Value
		default:
			if strings.HasPrefix(f.Name, ":") {
				return nil, badSample("pseudo-header %q: set Method and Path instead", f.Name)
			}
			rest = append(rest, f)
		}
	}
	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	h := &headerMap{entries: []Header{
		{":method", method}, {":path", path}, {":authority", authority}, {":scheme", scheme},
	}}
	h.entries = append(h.entries, rest...)
	if r.Body != "" && len(h.values("content-length")) == 0 && len(h.values("transfer-encoding")) == 0 {
		h.entries = append(h.entries, Header{"content-length", strconv.Itoa(len(r.Body))})
	}
	return h, nil
}

// headerMap builds the response header map handed to envoy_on_response.
func (r SampleResponse) headerMap() (*headerMap, error) {
	status := r.Status
	if status == 0 {
		status = 200
	}
	if status < 100 || status > 599 {
		return nil, badSample("status %d is not between 100 and 599", status)
	}
	fields, err := sortedFields(r.Headers)
	if err != nil {
		return nil, err
	}
	h := &headerMap{entries: []Header{{":status", strconv.Itoa(status)}}}
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			return nil, badSample("pseudo-header %q: set Status instead", f.Name)
		}
		h.entries = append(h.entries, f)
	}
	if r.Body != "" && len(h.values("content-length")) == 0 && len(h.values("transfer-encoding")) == 0 {
		h.entries = append(h.entries, Header{"content-length", strconv.Itoa(len(r.Body))})
	}
	return h, nil
}

// sortedFields lower-cases and validates the caller's header fields.
func sortedFields(in map[string]string) ([]Header, error) {
	out := make([]Header, 0, len(in))
	seen := make(map[string]bool, len(in))
	for name, value := range in {
		lower := strings.ToLower(name)
		if !isToken(strings.TrimPrefix(lower, ":")) {
			return nil, badSample("header name %q is not an HTTP token", name)
		}
		if !validHeaderValue(value) {
			return nil, badSample("header %q: value contains CR, LF or NUL", name)
		}
		if seen[lower] {
			return nil, badSample("header %q given twice with different case", name)
		}
		seen[lower] = true
		out = append(out, Header{lower, value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// isToken reports whether s is an RFC 9110 token (method names, header names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue rejects the bytes that would split or truncate a header on the wire.
func validHeaderValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}
