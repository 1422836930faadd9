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

// buildCluster is the upstream's cluster: balancing, connection limits and, for Envoy, connect timeout and
// upstream protocol. gRPC nodes get only what gRPC reads; the rest would look like settings that apply.
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
	if g.Kind == KindGRPC {
		return c
	}
	var connect *registry.Duration
	if u.Timeouts != nil {
		connect = u.Timeouts.Connect
	}
	c.ConnectTimeout = durationpb.New(connect.Or(defaultConnectTimeout))
	c.TypedExtensionProtocolOptions = upstreamProtocolOptions(u.Connection)
	return c
}

func adsConfigSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}
