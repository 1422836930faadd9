package registry

import "fmt"

// Limits on one upstream definition and on the whole configuration. A request body is already capped in
// bytes (the admin API's --max-body-bytes); these bound what a body that fits may still blow up into:
// lists that every node receives in every snapshot, and strings copied into Envoy resources. Each is far
// above anything a real configuration needs (MaxServers, in validate.go, bounds servers per upstream).
const (
	MaxDomains           = 1024 // host names of one upstream
	MaxRoutes            = 1024 // path routes of one upstream
	MaxHashKeys          = 16   // Envoy evaluates every hash policy on every request
	MaxCheckHeaders      = 64   // headers a health check sends
	MaxStatusEntries     = 128  // expected and bad statuses of a check, retried status codes
	MaxRetryConditions   = 32   // entries of retry.on and retry.grpc_on
	MaxFieldBytes        = 4096 // any free-form string: zone, path, header value, gRPC service, Redis key
	MaxUpstreams         = 100_000
	MaxConfiguredServers = 1_000_000 // servers written in all upstream definitions together
)

// CheckLimits reports the first list or string of u over its limit, as a FieldError naming it.
func (u *Upstream) CheckLimits() error {
	lists := []listLength{
		{"domains", len(u.Domains), MaxDomains},
		{"routes", len(u.Routes), MaxRoutes},
	}
	if u.LB != nil {
		lists = append(lists, listLength{"lb.hash_keys", len(u.LB.HashKeys), MaxHashKeys})
	}
	if r := u.Retry; r != nil {
		lists = append(lists, []listLength{
			{"retry.on", len(r.On), MaxRetryConditions},
			{"retry.grpc_on", len(r.GRPCOn), MaxRetryConditions},
			{"retry.status_codes", len(r.StatusCodes), MaxStatusEntries},
		}...)
	}
	if h := u.HealthCheck; h != nil {
		lists = append(lists, listLength{"health_check.headers", len(h.Headers), MaxCheckHeaders})
		if h.HTTP != nil {
			lists = append(lists, []listLength{
				{"health_check.http.expected_statuses", len(h.HTTP.ExpectedStatuses), MaxStatusEntries},
				{"health_check.http.bad_statuses", len(h.HTTP.BadStatuses), MaxStatusEntries},
			}...)
		}
	}
	for _, l := range lists {
		if l.n > l.max {
			return fieldErr(l.field, "%d entries is more than the limit of %d", l.n, l.max)
		}
	}
	for i := range u.Servers { // up to MaxServers: no field name is formatted unless one is over
		if len(u.Servers[i].Zone) > MaxFieldBytes {
			return tooLong(fmt.Sprintf("servers[%d].zone", i), u.Servers[i].Zone)
		}
	}
	for _, s := range u.limitedStrings() {
		if len(s.value) > MaxFieldBytes {
			return tooLong(s.field, s.value)
		}
	}
	return nil
}

func tooLong(field, value string) error {
	return fieldErr(field, "%d bytes is more than the limit of %d", len(value), MaxFieldBytes)
}

type listLength struct {
	field  string
	n, max int
}

type limitedString struct{ field, value string }

// limitedStrings lists the free-form strings of u, other than server zones, with the field of each. It
// runs after the list limits, so it stays short.
func (u *Upstream) limitedStrings() []limitedString {
	var out []limitedString
	for i, r := range u.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		out = append(out, limitedString{f + ".host", r.Host}, limitedString{f + ".path_prefix", r.PathPrefix})
	}
	if u.LB != nil {
		for i, k := range u.LB.HashKeys {
			f := fmt.Sprintf("lb.hash_keys[%d]", i)
			out = append(out, limitedString{f + ".header", k.Header}, limitedString{f + ".query_param", k.QueryParam})
			if k.Cookie != nil {
				out = append(out, limitedString{f + ".cookie.name", k.Cookie.Name}, limitedString{f + ".cookie.path", k.Cookie.Path})
			}
		}
	}
	if h := u.HealthCheck; h != nil {
		out = append(out, limitedString{"health_check.grpc_service", h.GRPCService}, limitedString{"health_check.redis_key", h.RedisKey})
		for i, hp := range h.Headers {
			f := fmt.Sprintf("health_check.headers[%d]", i)
			out = append(out, limitedString{f + ".name", hp.Name}, limitedString{f + ".value", hp.Value})
		}
		if h.HTTP != nil {
			out = append(out, limitedString{"health_check.http.path", h.HTTP.Path},
				limitedString{"health_check.http.host", h.HTTP.Host}, limitedString{"health_check.http.method", h.HTTP.Method})
		}
	}
	return out
}

// CheckConfigLimits reports whether storing u in cfg (adding it or replacing the upstream of the same
// name) would pass the limits on the whole configuration. It counts the servers of every definition, so
// a write costs a pass over the configuration, which is small next to persisting it.
func CheckConfigLimits(cfg Config, u *Upstream) error {
	old, replacing := cfg.Upstreams[u.Name]
	if !replacing && len(cfg.Upstreams) >= MaxUpstreams {
		return fieldErr("name", "the configuration already holds the limit of %d upstreams; delete one first", MaxUpstreams)
	}
	total := len(u.Servers) - len(old.Servers)
	for _, other := range cfg.Upstreams {
		total += len(other.Servers)
	}
	if total > MaxConfiguredServers {
		return fieldErr("servers", "the configuration would hold %d servers, more than the limit of %d", total, MaxConfiguredServers)
	}
	return nil
}
