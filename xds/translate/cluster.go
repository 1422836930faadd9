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

func buildCluster(u *registry.Upstream, _ Group) *cluster.Cluster {
	var connect *registry.Duration
	if u.Timeouts != nil {
		connect = u.Timeouts.Connect
	}
	return &cluster.Cluster{
		Name:                 u.Name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			// Endpoints come over the same ADS stream, so CDS and EDS stay ordered.
			EdsConfig: adsConfigSource(),
		},
		ConnectTimeout: durationpb.New(connect.Or(defaultConnectTimeout)),
		LbPolicy:       cluster.Cluster_ROUND_ROBIN,
	}
}

func adsConfigSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}
