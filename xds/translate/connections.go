package translate

import (
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
)

// DefaultRetryBudgetPercent replaces Envoy's stock limit of 3 concurrent retries per cluster, which a busy
// upstream exceeds as soon as one server fails: 20% of active requests (Envoy's own budget default), and
// never fewer than 3. Retries are at most tries-1 per request, so the budget only stops retry storms.
const DefaultRetryBudgetPercent = 20.0

// httpProtocolOptionsName is the key Envoy looks up in typed_extension_protocol_options.
const httpProtocolOptionsName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// circuitBreakers is the cluster's DEFAULT-priority thresholds. gRPC reads max_requests only (its own
// default is 1024 too), so gRPC nodes get that and nothing else.
func circuitBreakers(u *registry.Upstream, kind Kind) *cluster.CircuitBreakers {
	c := u.Connection
	if c == nil {
		c = &registry.ConnectionLimits{}
	}
	t := &cluster.CircuitBreakers_Thresholds{Priority: core.RoutingPriority_DEFAULT, MaxRequests: count(c.MaxRequests)}
	if kind != KindGRPC {
		t.MaxConnections = count(c.MaxConnections)
		t.MaxPendingRequests = count(c.MaxPendingRequests)
		t.MaxRetries = count(c.MaxRetries)
		t.RetryBudget = retryBudget(u)
	}
	if t.MaxRequests == nil && t.MaxConnections == nil && t.MaxPendingRequests == nil && t.MaxRetries == nil && t.RetryBudget == nil {
		return nil
	}
	return &cluster.CircuitBreakers{Thresholds: []*cluster.CircuitBreakers_Thresholds{t}}
}

// retryBudget is set only where retries happen and max_retries does not already limit them (Envoy
// ignores max_retries under a budget).
func retryBudget(u *registry.Upstream) *cluster.CircuitBreakers_Thresholds_RetryBudget {
	if tries(u.Retry) < 2 || (u.Connection != nil && u.Connection.MaxRetries > 0) {
		return nil
	}
	pct := DefaultRetryBudgetPercent
	if u.Retry != nil && u.Retry.BudgetPercent != nil {
		pct = *u.Retry.BudgetPercent
	}
	return &cluster.CircuitBreakers_Thresholds_RetryBudget{BudgetPercent: &typev3.Percent{Value: pct}}
}

func count(n uint32) *wrapperspb.UInt32Value {
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(n)
}

// upstreamProtocolOptions is how Envoy talks to the servers: pooled connections' idle timeout, requests
// per connection, and HTTP/2. Nil leaves Envoy's defaults (HTTP/1.1, 1h idle, unlimited requests).
func upstreamProtocolOptions(c *registry.ConnectionLimits) map[string]*anypb.Any {
	if c == nil || (c.IdleTimeout == nil && c.MaxRequestsPerConnection == 0 && !c.HTTP2) {
		return nil
	}
	common := &core.HttpProtocolOptions{MaxRequestsPerConnection: count(c.MaxRequestsPerConnection)}
	if c.IdleTimeout != nil {
		common.IdleTimeout = durationpb.New(c.IdleTimeout.Duration)
	}
	explicit := &httpopts.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
		HttpProtocolOptions: &core.Http1ProtocolOptions{}}}
	if c.HTTP2 {
		explicit.ProtocolConfig = &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &core.Http2ProtocolOptions{}}
	}
	opts := &httpopts.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions:   &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	}
	return map[string]*anypb.Any{httpProtocolOptionsName: mustAny(opts)}
}
