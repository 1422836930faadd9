package registry

import (
	"cmp"
	"fmt"
	"math/big"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
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
	u.LB = u.LB.normalized()
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
		func() error { return u.Timeouts.validate() },
		func() error { return u.Retry.validate() },
		func() error { return validateRetryLimit(u.Connection, u.Retry) },
		func() error { return u.HealthCheck.validate() },
		func() error { return u.Passive.validate() },
		func() error { return validateServersPassive(u.Servers) },
		func() error { return validateRoutes(u.Routes) },
		u.CheckLimits, // limits.go
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
		if d != CatchAll && (!domainRE.MatchString(d) || len(d) > 253) {
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

// normalized lower-cases hash header names: they are case-insensitive, and gRPC metadata keys are lower
// case. It copies before changing anything, because decoders share unchanged option structs with the
// published state, which readers use concurrently.
func (lb *LoadBalancing) normalized() *LoadBalancing {
	if lb == nil || !slices.ContainsFunc(lb.HashKeys, func(k HashKey) bool { return k.Header != strings.ToLower(k.Header) }) {
		return lb
	}
	out := *lb
	out.HashKeys = slices.Clone(lb.HashKeys)
	for i := range out.HashKeys {
		out.HashKeys[i].Header = strings.ToLower(out.HashKeys[i].Header)
	}
	return &out
}

var lbPolicies = []string{"round_robin", "least_request", "random", "ring_hash", "maglev"}

// Limits shared by Envoy and gRPC: both reject a ring above 8M entries; Envoy's Maglev table is at most
// 5000011 and must be prime; gRPC caps choice_count at 10.
const (
	DefaultRingMinSize = 1024 // Envoy's and gRPC's, when only ring_max_size is set
	MaxRingSize        = 8 * 1024 * 1024
	MaxMaglevTableSize = 5000011
	MaxChoiceCount     = 10
)

// The policies each knob belongs to; a knob on another policy would be silently ignored, so it is an error.
var lbKnobs = []struct {
	field    string
	set      func(*LoadBalancing) bool
	policies []string
}{
	{"choice_count", func(lb *LoadBalancing) bool { return lb.ChoiceCount != 0 }, []string{"least_request"}},
	{"active_request_bias", func(lb *LoadBalancing) bool { return lb.ActiveRequestBias != nil }, []string{"least_request"}},
	{"ring_min_size", func(lb *LoadBalancing) bool { return lb.RingMinSize != 0 }, []string{"ring_hash"}},
	{"ring_max_size", func(lb *LoadBalancing) bool { return lb.RingMaxSize != 0 }, []string{"ring_hash"}},
	{"maglev_table_size", func(lb *LoadBalancing) bool { return lb.MaglevTableSize != 0 }, []string{"maglev"}},
	{"hash_keys", func(lb *LoadBalancing) bool { return len(lb.HashKeys) > 0 }, []string{"ring_hash", "maglev"}},
	{"slow_start", func(lb *LoadBalancing) bool { return lb.SlowStart != nil }, []string{"round_robin", "least_request"}},
}

func (lb *LoadBalancing) validate() error {
	if lb == nil {
		return nil
	}
	if lb.Policy != "" && !slices.Contains(lbPolicies, lb.Policy) {
		return fieldErr("lb.policy", "%q is not one of %s", lb.Policy, strings.Join(lbPolicies, ", "))
	}
	policy := cmp.Or(lb.Policy, "round_robin")
	for _, k := range lbKnobs {
		if k.set(lb) && !slices.Contains(k.policies, policy) {
			return fieldErr("lb."+k.field, "only applies to %s, not %s", strings.Join(k.policies, " and "), policy)
		}
	}
	switch {
	case lb.ChoiceCount != 0 && (lb.ChoiceCount < 2 || lb.ChoiceCount > MaxChoiceCount):
		return fieldErr("lb.choice_count", "%d is out of range (2-%d)", lb.ChoiceCount, MaxChoiceCount)
	case lb.ActiveRequestBias != nil && (*lb.ActiveRequestBias < 0 || *lb.ActiveRequestBias > 100):
		return fieldErr("lb.active_request_bias", "must be in [0, 100]")
	case lb.RingMinSize > MaxRingSize:
		return fieldErr("lb.ring_min_size", "%d is more than %d", lb.RingMinSize, MaxRingSize)
	case lb.RingMaxSize > MaxRingSize:
		return fieldErr("lb.ring_max_size", "%d is more than %d", lb.RingMaxSize, MaxRingSize)
	case lb.RingMaxSize != 0 && lb.RingMinSize > lb.RingMaxSize:
		return fieldErr("lb.ring_min_size", "is larger than ring_max_size")
	case lb.RingMaxSize != 0 && lb.RingMinSize == 0 && lb.RingMaxSize < DefaultRingMinSize:
		// Envoy and gRPC would take their default minimum, larger than this maximum, and reject the cluster.
		return fieldErr("lb.ring_max_size", "%d is below the default ring_min_size %d; set ring_min_size too", lb.RingMaxSize, DefaultRingMinSize)
	case lb.MaglevTableSize != 0 && (lb.MaglevTableSize > MaxMaglevTableSize || !big.NewInt(int64(lb.MaglevTableSize)).ProbablyPrime(0)):
		return fieldErr("lb.maglev_table_size", "%d is not a prime of at most %d (e.g. 65537)", lb.MaglevTableSize, MaxMaglevTableSize)
	case lb.SlowStart != nil && lb.SlowStart.Duration == 0:
		return fieldErr("lb.slow_start", "must be positive")
	}
	for i, k := range lb.HashKeys {
		if err := k.validate(fmt.Sprintf("lb.hash_keys[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// An HTTP header name (RFC 9110 token), lower case; ":path"-style pseudo-headers are allowed too.
var headerRE = regexp.MustCompile("^:?[a-z0-9!#$%&'*+.^_`|~-]+$")

// A cookie name is a token as well, in any case.
var cookieRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func (k HashKey) validate(f string) error {
	n := 0
	for _, set := range []bool{k.Header != "", k.Cookie != nil, k.SourceIP, k.QueryParam != "", k.Path} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return fieldErr(f, "set exactly one of header, cookie, source_ip, query_param, path")
	case k.Header != "" && !headerRE.MatchString(k.Header):
		return fieldErr(f+".header", "%q is not a header name", k.Header)
	case k.Cookie != nil && !cookieRE.MatchString(k.Cookie.Name):
		return fieldErr(f+".cookie.name", "%q is not a cookie name", k.Cookie.Name)
	case k.Cookie != nil && k.Cookie.Path != "" && !strings.HasPrefix(k.Cookie.Path, "/"):
		return fieldErr(f+".cookie.path", "%q must start with /", k.Cookie.Path)
	case k.QueryParam != "" && strings.ContainsAny(k.QueryParam, "&=# "):
		return fieldErr(f+".query_param", "%q is not a query parameter name", k.QueryParam)
	}
	return nil
}

func (c *ConnectionLimits) validate() error {
	return nil // every value is an unsigned count or a duration; zero means Envoy's default
}

func (t *Timeouts) validate() error {
	if t != nil && t.Connect != nil && t.Connect.Duration <= 0 {
		return fieldErr("timeouts.connect", "must be positive")
	}
	return nil
}

// Conditions Envoy's router accepts in retry_on for HTTP. "retriable-headers" is left out: it needs
// header matchers the model does not have, and without them it retries nothing.
var httpRetryOn = []string{"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "http3-post-connect-failure"}

// gRPC status names, as Envoy's retry_on and gRPC's retryableStatusCodes know them.
var grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// IsGRPCRetryOn says whether a retry condition is a gRPC status, which gRPC clients understand.
func IsGRPCRetryOn(on string) bool { return slices.Contains(grpcRetryOn, on) }

// MaxTries bounds RetryPolicy.Tries. gRPC clients cap attempts at 5 on their own.
const MaxTries = 10

func (r *RetryPolicy) validate() error {
	if r == nil {
		return nil
	}
	if r.Tries < 0 || r.Tries > MaxTries {
		return fieldErr("retry.tries", "%d is out of range (1-%d)", r.Tries, MaxTries)
	}
	for i, on := range r.On {
		if !slices.Contains(httpRetryOn, on) && !slices.Contains(grpcRetryOn, on) {
			return fieldErr(fmt.Sprintf("retry.on[%d]", i), "%q is not a retry condition (one of %s)", on,
				strings.Join(append(slices.Clone(httpRetryOn), grpcRetryOn...), ", "))
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
	// An explicit list without the condition would make the codes dead, and the condition without codes
	// would retry nothing: both are mistakes. With "on" unset, the default list has the condition.
	hasCodes := slices.Contains(r.On, "retriable-status-codes")
	if len(r.On) > 0 && hasCodes && len(r.StatusCodes) == 0 {
		return fieldErr("retry.status_codes", "are required with the retriable-status-codes condition")
	}
	if len(r.On) > 0 && !hasCodes && len(r.StatusCodes) > 0 {
		return fieldErr("retry.status_codes", "only apply with the retriable-status-codes condition in retry.on")
	}
	if r.BackOffBase != nil && r.BackOffBase.Duration <= 0 {
		return fieldErr("retry.backoff_base", "must be positive")
	}
	if r.BackOffMax != nil && r.BackOffMax.Duration < r.BackOffBase.Or(DefaultBackOffBase) {
		return fieldErr("retry.backoff_max", "must be at least backoff_base (default %s)", DefaultBackOffBase)
	}
	if r.HostSelectionAttempts < 0 || r.HostSelectionAttempts > MaxTries {
		return fieldErr("retry.host_selection_attempts", "%d is out of range (1-%d)", r.HostSelectionAttempts, MaxTries)
	}
	if r.BudgetPercent != nil && (*r.BudgetPercent <= 0 || *r.BudgetPercent > 100) {
		return fieldErr("retry.budget_percent", "must be in (0, 100]")
	}
	return nil
}

// DefaultBackOffBase is Envoy's and gRPC's retry back-off base when none is set.
const DefaultBackOffBase = 25 * time.Millisecond

// validateRetryLimit refuses both limits on concurrent retries: Envoy ignores max_retries when a retry
// budget is set, so one of the two would be dead.
func validateRetryLimit(c *ConnectionLimits, r *RetryPolicy) error {
	if c != nil && c.MaxRetries > 0 && r != nil && r.BudgetPercent != nil {
		return fieldErr("connection.max_retries", "and retry.budget_percent both limit concurrent retries; give one of them")
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
