package translate

import (
	"strings"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushosts "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
)

// Defaults from the seed's nginx: proxy_next_upstream error timeout http_502 with two tries, no total
// request timeout, proxy_read_timeout 60s. "reset" also retries a per-try timeout (Envoy resets the
// attempt and asks the retry state as for any reset), which is nginx's "timeout".
const (
	defaultTries                 = 2
	defaultIdleTimeout           = 60 * time.Second
	defaultHostSelectionAttempts = 3
)

var (
	defaultRetryOn     = []string{"connect-failure", "reset", "retriable-status-codes"}
	defaultStatusCodes = []uint32{502}
	// UNAVAILABLE is what a gRPC client sees for a refused or reset connection: the seed's "error".
	defaultGRPCRetryOn = []string{"unavailable"}
)

// previousHostsName is Envoy's retry host predicate that rejects hosts already tried.
const previousHostsName = "envoy.retry_host_predicates.previous_hosts"

func tries(r *registry.RetryPolicy) int {
	if r == nil || r.Tries == 0 {
		return defaultTries
	}
	return r.Tries
}

// routeAction sends a route to upstream u with u's hashing, retries and timeouts, whatever host the route
// is on: a path route on a gateway host behaves like the upstream's own host.
func routeAction(u *registry.Upstream, g Group) *route.RouteAction {
	a := &route.RouteAction{
		ClusterSpecifier: &route.RouteAction_Cluster{Cluster: u.Name},
		HashPolicy:       hashPolicies(u.LB, g.Kind),
	}
	t := u.Timeouts
	if t == nil {
		t = &registry.Timeouts{}
	}
	if g.Kind == KindGRPC {
		a.RetryPolicy = grpcRetryPolicy(u.Retry)
		// gRPC takes max_stream_duration as the call's deadline (when shorter than the caller's own).
		if d := t.Request.Or(0); d > 0 {
			a.MaxStreamDuration = &route.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(d)}
		}
		return a
	}
	a.RetryPolicy = envoyRetryPolicy(u.Retry)
	// Set even when zero: Envoy's own default route timeout is 15s, and nginx had none.
	a.Timeout = durationpb.New(t.Request.Or(0))
	a.IdleTimeout = durationpb.New(t.Idle.Or(defaultIdleTimeout))
	return a
}

func envoyRetryPolicy(r *registry.RetryPolicy) *route.RetryPolicy {
	n := tries(r)
	if n < 2 {
		return nil
	}
	if r == nil {
		r = &registry.RetryPolicy{}
	}
	on, codes := r.On, r.StatusCodes
	if len(on) == 0 {
		on = defaultRetryOn
		if len(codes) == 0 {
			codes = defaultStatusCodes
		}
	}
	p := &route.RetryPolicy{
		RetryOn:              strings.Join(on, ","),
		NumRetries:           wrapperspb.UInt32(uint32(n - 1)),
		RetriableStatusCodes: codes,
		RetryBackOff:         backOff(r),
	}
	if r.PerTryTimeout != nil {
		p.PerTryTimeout = durationpb.New(r.PerTryTimeout.Duration)
	}
	if r.OtherHost == nil || *r.OtherHost {
		p.RetryHostPredicate = []*route.RetryPolicy_RetryHostPredicate{{
			Name:       previousHostsName,
			ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushosts.PreviousHostsPredicate{})},
		}}
		p.HostSelectionRetryMaxAttempts = int64(defaultHostSelectionAttempts)
		if r.HostSelectionAttempts > 0 {
			p.HostSelectionRetryMaxAttempts = int64(r.HostSelectionAttempts)
		}
	}
	return p
}

// grpcRetryPolicy holds only what gRPC reads (gRFC A44): status codes, number of retries, back-off. gRPC
// has no per-try timeout or host predicate; its retry picks again through the balancer, which with
// round_robin or least_request is normally another server. A policy without a gRPC code is left out:
// gRPC would read it as "no retry" anyway.
func grpcRetryPolicy(r *registry.RetryPolicy) *route.RetryPolicy {
	n := tries(r)
	if n < 2 {
		return nil
	}
	if r == nil {
		r = &registry.RetryPolicy{}
	}
	codes := r.GRPCOn
	if len(codes) == 0 {
		for _, on := range r.On {
			if registry.IsGRPCRetryOn(on) {
				codes = append(codes, on)
			}
		}
	}
	if len(codes) == 0 {
		codes = defaultGRPCRetryOn
	}
	return &route.RetryPolicy{
		RetryOn:      strings.Join(codes, ","),
		NumRetries:   wrapperspb.UInt32(uint32(n - 1)),
		RetryBackOff: backOff(r),
	}
}

func backOff(r *registry.RetryPolicy) *route.RetryPolicy_RetryBackOff {
	if r.BackOffBase == nil && r.BackOffMax == nil {
		return nil
	}
	b := &route.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(r.BackOffBase.Or(registry.DefaultBackOffBase))}
	if r.BackOffMax != nil {
		b.MaxInterval = durationpb.New(r.BackOffMax.Duration)
	}
	return b
}
