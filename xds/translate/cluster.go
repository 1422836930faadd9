package translate

import (
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dynup/dynup/registry"
)

// The seed's proxy_connect_timeout.
const defaultConnectTimeout = 3 * time.Second

// buildCluster is the upstream's cluster: balancing, connection limits, health and, for Envoy, connect
// timeout, upstream protocol and load reporting. gRPC nodes get only what gRPC reads; the rest would look
// like settings that apply.
func buildCluster(u *registry.Upstream, g Group) *cluster.Cluster {
	c := &cluster.Cluster{
		Name:                 u.Name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			// Endpoints come over the same ADS stream, so CDS and EDS stay ordered.
			EdsConfig: adsConfigSource(),
		},
		CircuitBreakers: circuitBreakers(u, g.Kind),
	}
	applyBalancing(c, u.LB, g.Kind)
	applyRingSize(c, u, g)
	if g.Kind == KindGRPC {
		c.OutlierDetection = grpcOutlierDetection(u, g)
		return c
	}
	var connect *registry.Duration
	if u.Timeouts != nil {
		connect = u.Timeouts.Connect
	}
	c.ConnectTimeout = durationpb.New(connect.Or(defaultConnectTimeout))
	check, checked := envoyCheck(u, g.Kind)
	if checked {
		c.HealthChecks = healthChecks(check)
	}
	c.TypedExtensionProtocolOptions = upstreamProtocolOptions(connectionForCheck(u, check, checked))
	c.OutlierDetection = envoyOutlierDetection(u)
	commonLbConfig(c, u)
	// Envoy reports load (per endpoint, as dynup's LRS answer asks) to the server its clusters came from;
	// dynup's failure tracker counts the errors across the fleet. Envoy reads the LRS server from its
	// bootstrap today (cluster_manager.load_stats_config, which dynup's bootstraps set); this field says
	// the same per cluster for clients that read it.
	c.LrsServer = &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Self{Self: &core.SelfConfigSource{}},
	}
	return c
}

func adsConfigSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}
