// Package healthcheck gives health settings their meaning, once for every consumer: the defaults of an
// active check, which HTTP statuses count as healthy, and each server's passive limits (max_fails,
// fail_timeout). Translation turns these into Envoy and gRPC resources; dynup's own checker (Checker, in
// checker.go) and the fleet-wide failure tracker (xds/feedback) apply them directly.
package healthcheck

import (
	"cmp"
	"slices"
	"time"

	"github.com/dynup/dynup/registry"
)

// Defaults of an active check: checkups' heartbeat (checkup_timer_interval 5s, per-upstream timeout 5s,
// sensibility 1, a server is back after one good check).
const (
	DefaultInterval           = 5 * time.Second
	DefaultTimeout            = 5 * time.Second
	DefaultHealthyThreshold   = 1
	DefaultUnhealthyThreshold = 1
	DefaultHTTPPath           = "/"
	DefaultHTTPMethod         = "GET"
)

// Who probes: each Envoy, dynup once for the fleet, or both.
const (
	CheckerEnvoy = "envoy"
	CheckerDynup = "dynup"
	CheckerBoth  = "both"
)

// DefaultExpected is what an HTTP check accepts when it lists neither expected nor bad statuses: 2xx and
// 3xx, as the nginx check module and dyups (check_http_expect_alive's default) have it.
var DefaultExpected = []registry.StatusRange{{Start: 200, End: 400}}

// Check is an upstream's active check with every default applied.
type Check struct {
	Type               string // tcp, http, grpc, redis
	Checker            string // envoy, dynup, both
	Interval           time.Duration
	Timeout            time.Duration
	Jitter             time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	// HTTP
	Path, Host, Method string
	Expected           []registry.StatusRange // sorted, disjoint, not empty
	// HTTP2 probes in HTTP/2 (h2c): the upstream is spoken to in HTTP/2 and may know nothing else.
	HTTP2 bool
	// gRPC and Redis
	GRPCService string
	RedisKey    string
	// Headers go with HTTP probes (request headers) and gRPC probes (metadata).
	Headers []registry.HeaderPair
}

// ActiveCheck returns the upstream's active check, or false when it has none (no type, or disabled).
func ActiveCheck(u *registry.Upstream) (Check, bool) {
	h := u.HealthCheck
	if h == nil || h.Type == "" || (h.Enabled != nil && !*h.Enabled) {
		return Check{}, false
	}
	c := Check{
		Type:               h.Type,
		Checker:            cmp.Or(h.Checker, CheckerEnvoy),
		Interval:           h.Interval.Or(DefaultInterval),
		Timeout:            h.Timeout.Or(DefaultTimeout),
		Jitter:             h.Jitter.Or(0),
		HealthyThreshold:   cmp.Or(h.HealthyThreshold, DefaultHealthyThreshold),
		UnhealthyThreshold: cmp.Or(h.UnhealthyThreshold, DefaultUnhealthyThreshold),
		GRPCService:        h.GRPCService,
		RedisKey:           h.RedisKey,
		Headers:            h.Headers,
	}
	if c.Type == "http" {
		hc := h.HTTP
		if hc == nil {
			hc = &registry.HTTPCheck{}
		}
		c.Path = cmp.Or(hc.Path, DefaultHTTPPath)
		c.Method = cmp.Or(hc.Method, DefaultHTTPMethod)
		// Envoy sends the cluster name as the probe's Host when none is set; dynup's checker does the same.
		c.Host = cmp.Or(hc.Host, u.Name)
		c.Expected = ExpectedStatuses(hc)
		c.HTTP2 = u.Connection != nil && u.Connection.HTTP2
	}
	return c, true
}

// ByEnvoy says whether Envoy nodes probe the servers themselves.
func (c Check) ByEnvoy() bool { return c.Checker == CheckerEnvoy || c.Checker == CheckerBoth }

// ByDynup says whether dynup probes the servers once for the fleet.
func (c Check) ByDynup() bool { return c.Checker == CheckerDynup || c.Checker == CheckerBoth }

// Healthy says whether an HTTP status is a healthy answer.
func (c Check) Healthy(status int) bool {
	for _, r := range c.Expected {
		if status >= r.Start && status < r.End {
			return true
		}
	}
	return false
}

// ExpectedStatuses are the statuses an HTTP check accepts, as sorted disjoint ranges:
//   - only bad statuses (checkups' statuses map with false values): every status but those, [100, 600)
//     minus the bad codes, because checkups fails a probe only on a status listed as bad;
//   - expected ranges: those, minus any bad codes also given;
//   - neither: DefaultExpected.
//
// The result may be empty only for a configuration validation refuses.
func ExpectedStatuses(h *registry.HTTPCheck) []registry.StatusRange {
	if h == nil || (len(h.ExpectedStatuses) == 0 && len(h.BadStatuses) == 0) {
		return slices.Clone(DefaultExpected)
	}
	base := h.ExpectedStatuses
	if len(base) == 0 {
		base = []registry.StatusRange{{Start: 100, End: 600}}
	}
	var good [600]bool
	for _, r := range base {
		for code := max(r.Start, 100); code < min(r.End, 600); code++ {
			good[code] = true
		}
	}
	for _, code := range h.BadStatuses {
		if code >= 100 && code < 600 {
			good[code] = false
		}
	}
	var out []registry.StatusRange
	for code := 100; code < 600; code++ {
		if !good[code] {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End == code {
			out[n-1].End++
			continue
		}
		out = append(out, registry.StatusRange{Start: code, End: code + 1})
	}
	return out
}
