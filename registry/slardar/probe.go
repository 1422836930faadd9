package slardar

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dynup/dynup/registry"
)

// Methods Envoy's HTTP health checker can send; anything else would be rejected by Envoy at push time.
var probeMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"}

// ParseProbe reads a raw HTTP/1.x health-check request, as checkups' http_opts.query and the nginx check
// module's check_http_send both spell it ("GET /status HTTP/1.1\r\nHost: x\r\n\r\n"). It returns the
// method, path and Host, and the other header lines in their order.
//
// Envoy builds the probe itself from these parts, so a request body has nowhere to go and is refused.
// Bare "\n" line ends are accepted because hand-written configs often lack the "\r".
func ParseProbe(raw string) (registry.HTTPCheck, []registry.HeaderPair, error) {
	var h registry.HTTPCheck
	lines := strings.Split(raw, "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	req := strings.Fields(lines[0])
	if len(req) < 2 || len(req) > 3 {
		return h, nil, fmt.Errorf("request line %q is not \"METHOD /path HTTP/1.x\"", lines[0])
	}
	if !slices.Contains(probeMethods, req[0]) {
		return h, nil, fmt.Errorf("method %q is not one of %s", req[0], strings.Join(probeMethods, ", "))
	}
	if !strings.HasPrefix(req[1], "/") {
		return h, nil, fmt.Errorf("path %q must start with /", req[1])
	}
	if len(req) == 3 && !strings.HasPrefix(req[2], "HTTP/") {
		return h, nil, fmt.Errorf("protocol %q is not HTTP/1.x", req[2])
	}
	h.Method, h.Path = req[0], req[1]

	var headers []registry.HeaderPair
	for n, line := range lines[1:] {
		if line == "" {
			// The blank line ends the head; only empty lines (the usual trailing "\r\n\r\n") may follow.
			for _, rest := range lines[n+2:] {
				if rest != "" {
					return h, nil, fmt.Errorf("a request body is not supported (Envoy sends no body)")
				}
			}
			break
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return h, nil, fmt.Errorf("header line %q is not \"Name: value\"", line)
		}
		if strings.EqualFold(name, "host") {
			h.Host = value
			continue
		}
		headers = append(headers, registry.HeaderPair{Name: name, Value: value})
	}
	return h, headers, nil
}
