// Package registry holds dynup's upstream model as plain data, the versioned store that owns it, and the
// sources that feed it (admin writes, the local file, Consul).
//
// Everything here is plain data: no Envoy types. The xds package translates a State into Envoy resources.
package registry

// Upstream is one named backend set: Slardar's "skey", an nginx upstream block, one Envoy cluster.
type Upstream struct {
	Name string `json:"name"`
	// Domains are the Host names routed to this upstream. Empty means the upstream's own name. The domain
	// "*" (CatchAll) makes the upstream the default for every Host no other upstream serves.
	Domains []string `json:"domains,omitempty"`
	Servers []Server `json:"servers"`

	LB          *LoadBalancing    `json:"lb,omitempty"`
	Keepalive   int               `json:"keepalive,omitempty"`
	Connection  *ConnectionLimits `json:"connection,omitempty"`
	Timeouts    *Timeouts         `json:"timeouts,omitempty"`
	Retry       *RetryPolicy      `json:"retry,omitempty"`
	HealthCheck *HealthCheck      `json:"health_check,omitempty"`
	Passive     *PassiveHealth    `json:"passive,omitempty"`
	// Protected keeps one server selectable when all have failed (checkups' "protected", default true).
	Protected *bool `json:"protected,omitempty"`
	// Routes are path routes this upstream takes on other (shared) hosts, e.g. a gateway's /beautify.
	Routes []PathRoute `json:"routes,omitempty"`
}

// Server is one backend address of an upstream.
type Server struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Weight int    `json:"weight,omitempty"` // 0 means the default, 1
	Zone   string `json:"zone,omitempty"`
	// Level is the failover level: 0 is primary; higher levels take traffic only when lower ones cannot.
	// Backup is the dyups spelling of "level 1 or below"; the two are kept consistent by Normalize.
	Level       int       `json:"level,omitempty"`
	Backup      bool      `json:"backup,omitempty"`
	Down        bool      `json:"down,omitempty"`
	MaxFails    *int      `json:"max_fails,omitempty"`
	FailTimeout *Duration `json:"fail_timeout,omitempty"`
	// Source says who contributed the server ("admin", "file", "consul"); set by the store, not by users.
	Source string `json:"source,omitempty"`
	// Health is set by the store when a health source (active checks, failure feedback) took the server
	// out; translation marks it UNHEALTHY. Never set by users.
	Health *ServerHealth `json:"health,omitempty"`
}

// PathRoute sends requests for Host with the path prefix to the upstream that declares it.
type PathRoute struct {
	Host       string `json:"host"`
	PathPrefix string `json:"path_prefix"`
}

// LoadBalancing selects the balancing policy and its knobs.
type LoadBalancing struct {
	// Policy: round_robin (weighted, default), least_request, random, ring_hash, maglev.
	Policy            string    `json:"policy,omitempty"`
	ChoiceCount       int       `json:"choice_count,omitempty"`        // least_request
	ActiveRequestBias *float64  `json:"active_request_bias,omitempty"` // least_request
	RingMinSize       uint64    `json:"ring_min_size,omitempty"`       // ring_hash
	RingMaxSize       uint64    `json:"ring_max_size,omitempty"`       // ring_hash
	MaglevTableSize   uint64    `json:"maglev_table_size,omitempty"`   // maglev, a prime
	HashKeys          []HashKey `json:"hash_keys,omitempty"`           // ring_hash, maglev; tried in order
	SlowStart         *Duration `json:"slow_start,omitempty"`          // round_robin, least_request
}

// HashKey is one source of a consistent-hash key. Exactly one of the fields is set.
type HashKey struct {
	Header     string     `json:"header,omitempty"`
	Cookie     *CookieKey `json:"cookie,omitempty"`
	SourceIP   bool       `json:"source_ip,omitempty"`
	QueryParam string     `json:"query_param,omitempty"`
	Path       bool       `json:"path,omitempty"`
	// Terminal stops at this key when it yields a value, so later keys are only fallbacks.
	Terminal bool `json:"terminal,omitempty"`
}

// CookieKey hashes on a cookie; with a TTL, Envoy sets the cookie when it is missing.
type CookieKey struct {
	Name string    `json:"name"`
	TTL  *Duration `json:"ttl,omitempty"`
	Path string    `json:"path,omitempty"`
}

// ConnectionLimits bound the connections and requests Envoy opens to the upstream. Zero means Envoy's
// default. It must stay comparable (no slices): the dyups parser compares it with its zero value.
type ConnectionLimits struct {
	MaxConnections     uint32 `json:"max_connections,omitempty"`      // circuit breaker, all servers together
	MaxPendingRequests uint32 `json:"max_pending_requests,omitempty"` // circuit breaker
	MaxRequests        uint32 `json:"max_requests,omitempty"`         // circuit breaker; gRPC honours it too
	// MaxRetries caps concurrent retries; it replaces the default retry budget (RetryPolicy.BudgetPercent).
	MaxRetries               uint32    `json:"max_retries,omitempty"`
	MaxRequestsPerConnection uint32    `json:"max_requests_per_connection,omitempty"`
	IdleTimeout              *Duration `json:"idle_timeout,omitempty"` // a pooled connection unused this long is closed
	HTTP2                    bool      `json:"http2,omitempty"`        // speak HTTP/2 (h2c) to the servers
}

// Timeouts of one request to the upstream. Unset values take the seed's nginx settings.
type Timeouts struct {
	Connect *Duration `json:"connect,omitempty"` // default 3s (proxy_connect_timeout)
	Request *Duration `json:"request,omitempty"` // whole request with retries; default 0, none (nginx has none)
	Idle    *Duration `json:"idle,omitempty"`    // no bytes either way for this long; default 60s (proxy_read_timeout); 0 is none
}

// RetryPolicy says when and how often a request is tried again. Unset values take the seed's nginx
// settings (proxy_next_upstream error timeout http_502, two tries).
type RetryPolicy struct {
	Tries         int       `json:"tries,omitempty"` // total attempts, as checkups' "try"; default 2; 1 means no retry
	PerTryTimeout *Duration `json:"per_try_timeout,omitempty"`
	// On are Envoy retry_on conditions; default connect-failure, reset, retriable-status-codes.
	On     []string `json:"on,omitempty"`
	GRPCOn []string `json:"grpc_on,omitempty"` // gRPC status codes for proxyless gRPC nodes; default unavailable
	// StatusCodes are retried with the retriable-status-codes condition; default 502.
	StatusCodes []uint32  `json:"status_codes,omitempty"`
	OtherHost   *bool     `json:"other_host,omitempty"` // retry on a host not tried before (default true)
	BackOffBase *Duration `json:"backoff_base,omitempty"`
	BackOffMax  *Duration `json:"backoff_max,omitempty"`
	// HostSelectionAttempts is how often Envoy picks again to find a host not tried before (default 3).
	HostSelectionAttempts int `json:"host_selection_attempts,omitempty"`
	// BudgetPercent caps concurrent retries at this share of active requests (default 20).
	BudgetPercent *float64 `json:"budget_percent,omitempty"`
}

// HealthCheck configures active health checking.
type HealthCheck struct {
	// Type: tcp, http, grpc, redis; "" with Enabled false means none.
	Type    string `json:"type,omitempty"`
	Enabled *bool  `json:"enabled,omitempty"` // default true when Type is set
	// Checker: envoy (each Envoy probes), dynup (the control plane probes once for the fleet), both.
	Checker            string       `json:"checker,omitempty"`
	Interval           *Duration    `json:"interval,omitempty"`
	Timeout            *Duration    `json:"timeout,omitempty"`
	Jitter             *Duration    `json:"jitter,omitempty"`
	HealthyThreshold   int          `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int          `json:"unhealthy_threshold,omitempty"`
	HTTP               *HTTPCheck   `json:"http,omitempty"`
	GRPCService        string       `json:"grpc_service,omitempty"`
	RedisKey           string       `json:"redis_key,omitempty"`
	Headers            []HeaderPair `json:"headers,omitempty"`
}

// HTTPCheck is an HTTP health probe. BadStatuses follows checkups: a status is bad only when listed.
type HTTPCheck struct {
	Path             string        `json:"path,omitempty"`
	Host             string        `json:"host,omitempty"`
	Method           string        `json:"method,omitempty"`
	ExpectedStatuses []StatusRange `json:"expected_statuses,omitempty"`
	BadStatuses      []int         `json:"bad_statuses,omitempty"`
}

// StatusRange is a half-open range of HTTP statuses [Start, End).
type StatusRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// HeaderPair is one header line.
type HeaderPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// PassiveHealth is checkups' max_fails/fail_timeout for servers that do not set their own.
type PassiveHealth struct {
	MaxFails    *int      `json:"max_fails,omitempty"` // 0 turns passive checks off
	FailTimeout *Duration `json:"fail_timeout,omitempty"`
}

// CatchAll is the domain of the default upstream. It is an ordinary domain to the store, so a second
// upstream claiming it is refused like any other domain served twice.
const CatchAll = "*"

// EffectiveDomains returns the Host names the upstream serves.
func (u *Upstream) EffectiveDomains() []string {
	if len(u.Domains) == 0 {
		return []string{u.Name}
	}
	return u.Domains
}

// EffectiveWeight returns the server's weight, defaulting to 1.
func (s *Server) EffectiveWeight() int {
	if s.Weight <= 0 {
		return 1
	}
	return s.Weight
}
