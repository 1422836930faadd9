package translate

import (
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
)

// grpcChannelID is the only filter-state key gRPC hashes on: one value per client channel (gRFC A42).
const grpcChannelID = "io.grpc.channel_id"

// policyFor is the balancing policy a group actually gets. gRPC clients know round_robin, least_request
// and ring_hash only and NACK a cluster with any other lb_policy, so random becomes round_robin (both
// spread evenly) and maglev becomes ring_hash (both consistent hashing on the same keys).
func policyFor(lb *registry.LoadBalancing, kind Kind) string {
	policy := "round_robin"
	if lb != nil && lb.Policy != "" {
		policy = lb.Policy
	}
	if kind == KindGRPC {
		switch policy {
		case "random":
			return "round_robin"
		case "maglev":
			return "ring_hash"
		}
	}
	return policy
}

// applyBalancing sets the cluster's lb_policy and its config. Knobs only Envoy reads (slow start, active
// request bias) are left out for gRPC, which would ignore them: what a node gets is what it does.
func applyBalancing(c *cluster.Cluster, lb *registry.LoadBalancing, kind Kind) {
	if lb == nil {
		lb = &registry.LoadBalancing{}
	}
	envoy := kind != KindGRPC
	switch policyFor(lb, kind) {
	case "round_robin":
		c.LbPolicy = cluster.Cluster_ROUND_ROBIN
		if envoy && lb.SlowStart != nil {
			c.LbConfig = &cluster.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &cluster.Cluster_RoundRobinLbConfig{
				SlowStartConfig: slowStart(lb.SlowStart),
			}}
		}
	case "least_request":
		c.LbPolicy = cluster.Cluster_LEAST_REQUEST
		cfg := &cluster.Cluster_LeastRequestLbConfig{}
		if lb.ChoiceCount > 0 {
			cfg.ChoiceCount = wrapperspb.UInt32(uint32(lb.ChoiceCount))
		}
		if envoy && lb.ActiveRequestBias != nil {
			cfg.ActiveRequestBias = &core.RuntimeDouble{DefaultValue: *lb.ActiveRequestBias}
		}
		if envoy && lb.SlowStart != nil {
			cfg.SlowStartConfig = slowStart(lb.SlowStart)
		}
		if cfg.ChoiceCount != nil || cfg.ActiveRequestBias != nil || cfg.SlowStartConfig != nil {
			c.LbConfig = &cluster.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: cfg}
		}
	case "random":
		c.LbPolicy = cluster.Cluster_RANDOM
	case "ring_hash":
		c.LbPolicy = cluster.Cluster_RING_HASH
		cfg := &cluster.Cluster_RingHashLbConfig{HashFunction: cluster.Cluster_RingHashLbConfig_XX_HASH}
		if lb.RingMinSize > 0 {
			cfg.MinimumRingSize = wrapperspb.UInt64(lb.RingMinSize)
		}
		if lb.RingMaxSize > 0 {
			cfg.MaximumRingSize = wrapperspb.UInt64(lb.RingMaxSize)
		}
		c.LbConfig = &cluster.Cluster_RingHashLbConfig_{RingHashLbConfig: cfg}
	case "maglev":
		c.LbPolicy = cluster.Cluster_MAGLEV
		if lb.MaglevTableSize > 0 {
			c.LbConfig = &cluster.Cluster_MaglevLbConfig_{MaglevLbConfig: &cluster.Cluster_MaglevLbConfig{
				TableSize: wrapperspb.UInt64(lb.MaglevTableSize),
			}}
		}
	}
}

func slowStart(d *registry.Duration) *cluster.Cluster_SlowStartConfig {
	return &cluster.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(d.Duration)}
}

// hashPolicies turns the upstream's hash keys into the route's hash_policy, in order.
//
// gRPC hashes on request headers (metadata) and on its channel id only, and skips "-bin" and pseudo
// headers, which it cannot read; so for gRPC nodes a source_ip key becomes the channel id (one client,
// one backend, as one client address is for Envoy), and cookie, query parameter and path keys are left
// out. A request with no usable key is spread at random by both.
func hashPolicies(lb *registry.LoadBalancing, kind Kind) []*route.RouteAction_HashPolicy {
	if lb == nil {
		return nil
	}
	if p := policyFor(lb, kind); p != "ring_hash" && p != "maglev" {
		return nil
	}
	var out []*route.RouteAction_HashPolicy
	for _, k := range lb.HashKeys {
		hp := &route.RouteAction_HashPolicy{Terminal: k.Terminal}
		switch {
		case kind == KindGRPC && k.SourceIP:
			hp.PolicySpecifier = &route.RouteAction_HashPolicy_FilterState_{FilterState: &route.RouteAction_HashPolicy_FilterState{Key: grpcChannelID}}
		case kind == KindGRPC && (k.Header == "" || strings.HasSuffix(k.Header, "-bin") || strings.HasPrefix(k.Header, ":")):
			continue
		case k.Header != "":
			hp.PolicySpecifier = headerHash(k.Header)
		case k.Path:
			hp.PolicySpecifier = headerHash(":path")
		case k.SourceIP:
			hp.PolicySpecifier = &route.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &route.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		case k.QueryParam != "":
			hp.PolicySpecifier = &route.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &route.RouteAction_HashPolicy_QueryParameter{Name: k.QueryParam}}
		case k.Cookie != nil:
			ck := &route.RouteAction_HashPolicy_Cookie{Name: k.Cookie.Name, Path: k.Cookie.Path}
			if k.Cookie.TTL != nil {
				// With a TTL, Envoy sets the cookie on a response when the request had none.
				ck.Ttl = durationpb.New(k.Cookie.TTL.Duration)
			}
			hp.PolicySpecifier = &route.RouteAction_HashPolicy_Cookie_{Cookie: ck}
		}
		out = append(out, hp)
	}
	return out
}

func headerHash(name string) *route.RouteAction_HashPolicy_Header_ {
	return &route.RouteAction_HashPolicy_Header_{Header: &route.RouteAction_HashPolicy_Header{HeaderName: name}}
}
