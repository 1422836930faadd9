package translate

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	redis "github.com/envoyproxy/go-control-plane/envoy/extensions/health_checkers/redis/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
)

// redisHealthChecker is Envoy's name for its Redis PING (or EXISTS key) checker.
const redisHealthChecker = "envoy.health_checkers.redis"

// envoyCheck returns the upstream's active check when Envoy nodes run it themselves (checker envoy or
// both). gRPC clients have no active health checking, so for them the check exists only when dynup runs it
// (its verdicts reach them as UNHEALTHY endpoints).
func envoyCheck(u *registry.Upstream, kind Kind) (healthcheck.Check, bool) {
	c, ok := healthcheck.ActiveCheck(u)
	if !ok || kind == KindGRPC || !c.ByEnvoy() {
		return healthcheck.Check{}, false
	}
	return c, true
}

// healthChecks is the cluster's active check for Envoy.
//
// no_traffic_interval is the interval too: Envoy otherwise checks a cluster without traffic only every 60s,
// while checkups' heartbeat probes every server on the same timer whether it is used or not. A new server
// takes traffic after its first good check, which Envoy runs as soon as the server appears.
func healthChecks(c healthcheck.Check) []*core.HealthCheck {
	hc := &core.HealthCheck{
		Timeout:            durationpb.New(c.Timeout),
		Interval:           durationpb.New(c.Interval),
		NoTrafficInterval:  durationpb.New(c.Interval),
		UnhealthyThreshold: wrapperspb.UInt32(uint32(c.UnhealthyThreshold)),
		HealthyThreshold:   wrapperspb.UInt32(uint32(c.HealthyThreshold)),
	}
	if c.Jitter > 0 {
		hc.IntervalJitter = durationpb.New(c.Jitter)
	}
	switch c.Type {
	case "tcp":
		// Empty send and receive: connect only, checkups' "general".
		hc.HealthChecker = &core.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &core.HealthCheck_TcpHealthCheck{}}
	case "http":
		h := &core.HealthCheck_HttpHealthCheck{
			Host:                c.Host,
			Path:                c.Path,
			Method:              core.RequestMethod(core.RequestMethod_value[c.Method]),
			RequestHeadersToAdd: headerOptions(c.Headers),
		}
		for _, r := range c.Expected {
			h.ExpectedStatuses = append(h.ExpectedStatuses, &typev3.Int64Range{Start: int64(r.Start), End: int64(r.End)})
		}
		if c.HTTP2 {
			// Servers spoken to in HTTP/2 may know nothing else (h2c); probe them the same way.
			h.CodecClientType = typev3.CodecClientType_HTTP2
		}
		hc.HealthChecker = &core.HealthCheck_HttpHealthCheck_{HttpHealthCheck: h}
	case "grpc":
		hc.HealthChecker = &core.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &core.HealthCheck_GrpcHealthCheck{
			ServiceName: c.GRPCService, InitialMetadata: headerOptions(c.Headers)}}
	case "redis":
		hc.HealthChecker = &core.HealthCheck_CustomHealthCheck_{CustomHealthCheck: &core.HealthCheck_CustomHealthCheck{
			Name:       redisHealthChecker,
			ConfigType: &core.HealthCheck_CustomHealthCheck_TypedConfig{TypedConfig: mustAny(&redis.Redis{Key: c.RedisKey})},
		}}
	}
	return []*core.HealthCheck{hc}
}

// connectionForCheck is the upstream's connection settings as the cluster must have them for its check:
// Envoy's gRPC health checker refuses a cluster that does not speak HTTP/2, and servers that answer gRPC
// health checks speak gRPC, so such an upstream is spoken to in HTTP/2.
func connectionForCheck(u *registry.Upstream, c healthcheck.Check, checked bool) *registry.ConnectionLimits {
	if !checked || c.Type != "grpc" || (u.Connection != nil && u.Connection.HTTP2) {
		return u.Connection
	}
	conn := registry.ConnectionLimits{}
	if u.Connection != nil {
		conn = *u.Connection
	}
	conn.HTTP2 = true
	return &conn
}

func headerOptions(headers []registry.HeaderPair) []*core.HeaderValueOption {
	var out []*core.HeaderValueOption
	for _, h := range headers {
		out = append(out, &core.HeaderValueOption{
			Header:       &core.HeaderValue{Key: h.Name, Value: h.Value},
			AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return out
}
