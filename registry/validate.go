package registry

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// FieldError names the field that is wrong, so an API answer can point the user at it.
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"msg"`
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// The seed's upstream name pattern (Slardar's admin API).
var nameRE = regexp.MustCompile(`^[-_a-zA-Z0-9.]+$`)

// A domain is a DNS name, optionally with a leading "*." wildcard; Envoy matches it against Host.
var domainRE = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9_]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9_]*[a-z0-9])?)*$`)

// MaxServers bounds one upstream; a larger set is almost certainly a mistake, and EDS messages grow with it.
const MaxServers = 10000

// ValidateName checks an upstream name against the seed's pattern.
func ValidateName(name string) error {
	if name == "" || len(name) > 253 || !nameRE.MatchString(name) {
		return fieldErr("name", "%q is not a valid upstream name (allowed: letters, digits, '-', '_', '.'; at most 253)", name)
	}
	return nil
}

// Normalize puts an upstream in its canonical form: lower-case domains, Level and Backup consistent.
// Validate expects a normalized upstream.
func (u *Upstream) Normalize() {
	for i, d := range u.Domains {
		u.Domains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	for i := range u.Servers {
		s := &u.Servers[i]
		if s.Backup && s.Level == 0 {
			s.Level = 1
		}
		s.Backup = s.Level > 0
	}
}

// Validate checks one upstream on its own. Cross-upstream rules (a domain served twice) are the store's.
func (u *Upstream) Validate() error {
	if err := ValidateName(u.Name); err != nil {
		return err
	}
	if err := validateDomains(u.Domains); err != nil {
		return err
	}
	if err := validateServers(u.Servers); err != nil {
		return err
	}
	checks := []func() error{
		func() error { return u.LB.validate() },
		func() error { return u.Connection.validate() },
		func() error { return u.Retry.validate() },
		func() error { return u.HealthCheck.validate() },
		func() error { return u.Passive.validate() },
		func() error { return validateRoutes(u.Routes) },
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	if u.Keepalive < 0 {
		return fieldErr("keepalive", "must not be negative")
	}
	return nil
}

func validateDomains(domains []string) error {
	seen := map[string]bool{}
	for i, d := range domains {
		f := fmt.Sprintf("domains[%d]", i)
		if !domainRE.MatchString(d) || len(d) > 253 {
			return fieldErr(f, "%q is not a host name (a port is not part of it; use *.example.com for a wildcard)", d)
		}
		if seen[d] {
			return fieldErr(f, "%q is listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

func validateServers(servers []Server) error {
	if len(servers) > MaxServers {
		return fieldErr("servers", "%d servers is more than the limit of %d", len(servers), MaxServers)
	}
	seen := map[string]int{}
	for i, s := range servers {
		f := fmt.Sprintf("servers[%d]", i)
		if s.Host == "" {
			return fieldErr(f+".host", "is required")
		}
		if _, err := netip.ParseAddr(s.Host); err != nil {
			return fieldErr(f+".host", "%q is not an IP address (Envoy endpoints are addresses; register hostnames through Consul)", s.Host)
		}
		if s.Port < 1 || s.Port > 65535 {
			return fieldErr(f+".port", "%d is not a port (1-65535)", s.Port)
		}
		if s.Weight < 0 || s.Weight > 128*1024 {
			return fieldErr(f+".weight", "%d is out of range (1-131072)", s.Weight)
		}
		if s.Level < 0 || s.Level > 8 {
			return fieldErr(f+".level", "%d is out of range (0-8)", s.Level)
		}
		if s.MaxFails != nil && *s.MaxFails < 0 {
			return fieldErr(f+".max_fails", "must not be negative")
		}
		key := netip.AddrPortFrom(netip.MustParseAddr(s.Host), uint16(s.Port)).String()
		if j, dup := seen[key]; dup {
			return fieldErr(f, "%s is the same server as servers[%d]", key, j)
		}
		seen[key] = i
	}
	return nil
}

var lbPolicies = []string{"round_robin", "least_request", "random", "ring_hash", "maglev"}

func (lb *LoadBalancing) validate() error {
	if lb == nil {
		return nil
	}
	if lb.Policy != "" && !slices.Contains(lbPolicies, lb.Policy) {
		return fieldErr("lb.policy", "%q is not one of %s", lb.Policy, strings.Join(lbPolicies, ", "))
	}
	if lb.ChoiceCount != 0 && lb.ChoiceCount < 2 {
		return fieldErr("lb.choice_count", "must be at least 2")
	}
	if lb.RingMaxSize != 0 && lb.RingMinSize > lb.RingMaxSize {
		return fieldErr("lb.ring_min_size", "is larger than ring_max_size")
	}
	hashing := lb.Policy == "ring_hash" || lb.Policy == "maglev"
	if len(lb.HashKeys) > 0 && !hashing {
		return fieldErr("lb.hash_keys", "only apply to ring_hash and maglev")
	}
	for i, k := range lb.HashKeys {
		n := 0
		for _, set := range []bool{k.Header != "", k.Cookie != nil, k.SourceIP, k.QueryParam != "", k.Path} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fieldErr(fmt.Sprintf("lb.hash_keys[%d]", i), "set exactly one of header, cookie, source_ip, query_param, path")
		}
		if k.Cookie != nil && k.Cookie.Name == "" {
			return fieldErr(fmt.Sprintf("lb.hash_keys[%d].cookie.name", i), "is required")
		}
	}
	return nil
}

func (c *ConnectionLimits) validate() error {
	return nil // every value is an unsigned count; zero means Envoy's default
}

// Conditions Envoy's router accepts in retry_on for HTTP.
var httpRetryOn = []string{"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure"}

// gRPC status names, as Envoy's retry_on and gRPC's retryableStatusCodes know them.
var grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

func (r *RetryPolicy) validate() error {
	if r == nil {
		return nil
	}
	if r.Tries < 0 || r.Tries > 10 {
		return fieldErr("retry.tries", "%d is out of range (1-10)", r.Tries)
	}
	for i, on := range r.On {
		if !slices.Contains(httpRetryOn, on) && !slices.Contains(grpcRetryOn, on) {
			return fieldErr(fmt.Sprintf("retry.on[%d]", i), "%q is not a retry condition (one of %s)", on, strings.Join(httpRetryOn, ", "))
		}
	}
	for i, on := range r.GRPCOn {
		if !slices.Contains(grpcRetryOn, on) {
			return fieldErr(fmt.Sprintf("retry.grpc_on[%d]", i), "%q is not a gRPC retry condition (one of %s)", on, strings.Join(grpcRetryOn, ", "))
		}
	}
	for i, c := range r.StatusCodes {
		if c < 100 || c > 599 {
			return fieldErr(fmt.Sprintf("retry.status_codes[%d]", i), "%d is not an HTTP status", c)
		}
	}
	if r.BudgetPercent != nil && (*r.BudgetPercent <= 0 || *r.BudgetPercent > 100) {
		return fieldErr("retry.budget_percent", "must be in (0, 100]")
	}
	return nil
}

var checkTypes = []string{"tcp", "http", "grpc", "redis"}
var checkers = []string{"envoy", "dynup", "both"}

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
	if h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0 {
		return fieldErr("health_check", "thresholds must not be negative")
	}
	if h.Interval != nil && h.Interval.Duration == 0 {
		return fieldErr("health_check.interval", "must be positive")
	}
	if h.HTTP != nil {
		for i, r := range h.HTTP.ExpectedStatuses {
			if r.Start < 100 || r.End > 600 || r.Start >= r.End {
				return fieldErr(fmt.Sprintf("health_check.http.expected_statuses[%d]", i), "[%d, %d) is not a range within [100, 600)", r.Start, r.End)
			}
		}
		for i, c := range h.HTTP.BadStatuses {
			if c < 100 || c > 599 {
				return fieldErr(fmt.Sprintf("health_check.http.bad_statuses[%d]", i), "%d is not an HTTP status", c)
			}
		}
	}
	return nil
}

func (p *PassiveHealth) validate() error {
	if p != nil && p.MaxFails != nil && *p.MaxFails < 0 {
		return fieldErr("passive.max_fails", "must not be negative")
	}
	return nil
}

func validateRoutes(routes []PathRoute) error {
	for i, r := range routes {
		f := fmt.Sprintf("routes[%d]", i)
		if !domainRE.MatchString(strings.ToLower(r.Host)) {
			return fieldErr(f+".host", "%q is not a host name", r.Host)
		}
		if !strings.HasPrefix(r.PathPrefix, "/") {
			return fieldErr(f+".path_prefix", "%q must start with /", r.PathPrefix)
		}
	}
	return nil
}
