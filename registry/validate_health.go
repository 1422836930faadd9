package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

var checkTypes = []string{"tcp", "http", "grpc", "redis"}
var checkers = []string{"envoy", "dynup", "both"}

// Methods Envoy's HTTP health checker can send (its RequestMethod enum without CONNECT).
var checkMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"}

// Limits of health settings. A probe more often than every 100ms per server is load, not a health check;
// thresholds and max_fails beyond these are mistakes (a server would never change state).
const (
	MinCheckInterval = 100 * time.Millisecond
	MaxCheckTimeout  = time.Minute
	MaxThreshold     = 100
	MaxMaxFails      = 10000
	MaxFailTimeout   = 24 * time.Hour
)

// An HTTP header name in any case (RFC 9110 token); probes send header lines as written.
var checkHeaderRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func (h *HealthCheck) validate() error {
	if h == nil {
		return nil
	}
	if h.Type != "" && !slices.Contains(checkTypes, h.Type) {
		return fieldErr("health_check.type", "%q is not one of %s", h.Type, strings.Join(checkTypes, ", "))
	}
	if h.Checker != "" && !slices.Contains(checkers, h.Checker) {
		return fieldErr("health_check.checker", "%q is not one of %s", h.Checker, strings.Join(checkers, ", "))
	}
	if h.Type == "" && (h.Enabled == nil || *h.Enabled) && !isZeroCheck(h) {
		// Settings without a type would silently check nothing.
		return fieldErr("health_check.type", "is required with other health check settings (one of %s)", strings.Join(checkTypes, ", "))
	}
	for _, t := range []struct {
		field string
		n     int
	}{{"healthy_threshold", h.HealthyThreshold}, {"unhealthy_threshold", h.UnhealthyThreshold}} {
		if t.n < 0 || t.n > MaxThreshold {
			return fieldErr("health_check."+t.field, "%d is out of range (1-%d)", t.n, MaxThreshold)
		}
	}
	if h.Interval != nil && h.Interval.Duration < MinCheckInterval {
		return fieldErr("health_check.interval", "%s is shorter than the minimum of %s", h.Interval.Duration, MinCheckInterval)
	}
	if h.Timeout != nil && (h.Timeout.Duration <= 0 || h.Timeout.Duration > MaxCheckTimeout) {
		return fieldErr("health_check.timeout", "must be positive and at most %s", MaxCheckTimeout)
	}
	if err := h.validateTypeSettings(); err != nil {
		return err
	}
	if h.HTTP != nil {
		if err := h.HTTP.validate(); err != nil {
			return err
		}
	}
	for i, hp := range h.Headers {
		f := fmt.Sprintf("health_check.headers[%d]", i)
		switch {
		case !checkHeaderRE.MatchString(hp.Name):
			return fieldErr(f+".name", "%q is not a header name", hp.Name)
		case strings.EqualFold(hp.Name, "host"):
			return fieldErr(f+".name", "set the probe's Host with health_check.http.host")
		case strings.ContainsAny(hp.Value, "\r\n\x00"):
			return fieldErr(f+".value", "must not contain line breaks")
		}
	}
	return nil
}

// validateTypeSettings refuses gRPC and Redis settings on another check type, which would be silently
// ignored. HTTP probe settings (and headers) are kept under a tcp check on purpose: Slardar keeps options a
// body leaves out, so {"typ":"general"} and later {"typ":"http"} must bring the same probe back.
func (h *HealthCheck) validateTypeSettings() error {
	switch {
	case h.Type == "":
		return nil
	case h.GRPCService != "" && h.Type != "grpc":
		return fieldErr("health_check.grpc_service", "only applies to type grpc, not %s", h.Type)
	case h.RedisKey != "" && h.Type != "redis":
		return fieldErr("health_check.redis_key", "only applies to type redis, not %s", h.Type)
	}
	return nil
}

func (c *HTTPCheck) validate() error {
	if c.Path != "" && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \t\r\n\x00")) {
		return fieldErr("health_check.http.path", "%q is not a path (it starts with / and has no spaces)", c.Path)
	}
	if c.Host != "" && strings.ContainsAny(c.Host, " \t\r\n\x00/") {
		return fieldErr("health_check.http.host", "%q is not a host", c.Host)
	}
	if c.Method != "" && !slices.Contains(checkMethods, c.Method) {
		return fieldErr("health_check.http.method", "%q is not one of %s", c.Method, strings.Join(checkMethods, ", "))
	}
	var accepted [600]bool
	noExpected := len(c.ExpectedStatuses) == 0
	for i, r := range c.ExpectedStatuses {
		if r.Start < 100 || r.End > 600 || r.Start >= r.End {
			return fieldErr(fmt.Sprintf("health_check.http.expected_statuses[%d]", i), "[%d, %d) is not a range within [100, 600)", r.Start, r.End)
		}
		for code := r.Start; code < r.End; code++ {
			accepted[code] = true
		}
	}
	for i, code := range c.BadStatuses {
		if code < 100 || code > 599 {
			return fieldErr(fmt.Sprintf("health_check.http.bad_statuses[%d]", i), "%d is not an HTTP status", code)
		}
		accepted[code] = false
	}
	if !noExpected && !slices.Contains(accepted[:], true) {
		return fieldErr("health_check.http.bad_statuses", "every expected status is also listed as bad; no answer could be healthy")
	}
	return nil
}

// isZeroCheck says whether nothing but Type and Enabled is set.
func isZeroCheck(h *HealthCheck) bool {
	return h.Checker == "" && h.Interval == nil && h.Timeout == nil && h.Jitter == nil && h.HealthyThreshold == 0 &&
		h.UnhealthyThreshold == 0 && h.HTTP == nil && h.GRPCService == "" && h.RedisKey == "" && len(h.Headers) == 0
}

func (p *PassiveHealth) validate() error {
	if p == nil {
		return nil
	}
	return validatePassive("passive", p.MaxFails, p.FailTimeout)
}

// validateServersPassive checks each server's own max_fails and fail_timeout like the upstream's.
func validateServersPassive(servers []Server) error {
	for i := range servers {
		if err := validatePassive(fmt.Sprintf("servers[%d]", i), servers[i].MaxFails, servers[i].FailTimeout); err != nil {
			return err
		}
	}
	return nil
}

func validatePassive(prefix string, maxFails *int, failTimeout *Duration) error {
	if maxFails != nil && (*maxFails < 0 || *maxFails > MaxMaxFails) {
		return fieldErr(prefix+".max_fails", "%d is out of range (0-%d; 0 turns passive checks off)", *maxFails, MaxMaxFails)
	}
	if failTimeout != nil && (failTimeout.Duration <= 0 || failTimeout.Duration > MaxFailTimeout) {
		return fieldErr(prefix+".fail_timeout", "must be positive and at most %s", MaxFailTimeout)
	}
	return nil
}
