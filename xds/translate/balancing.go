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

// Ring sizing when the upstream sets no ring size (see applyRingSize).
const (
	// ringEntriesPerWeight is the number of ring entries per unit of server weight: a 4-server upstream
	// gets Envoy's default ring of 1024 entries, and up to 16 equal servers keep their entries.
	ringEntriesPerWeight = 256
	// ringCap is gRPC's largest ring (GRPC_RING_HASH_CAP). Envoy gets the same bound: both place entries
	// at xxhash("address_index"), so with the same size their rings should agree on where a key goes.
	ringCap = 4096
)

// applyRingSize sizes a ring hash cluster for group g so that a server keeps its ring entries while
// other servers come, go, or turn unhealthy: only the keys of the server that changed move.
//
// Envoy and gRPC build a ring per priority from its healthy servers, and give each server
// ceil(min_ring_size*w_min/W)*w/w_min entries (weights w, smallest w_min, sum W): with a fixed
// min_ring_size, every server's share of entries grows when one leaves, and about a sixth of the other
// keys move when one of four servers goes. So min_ring_size follows the servers that carry the traffic
// (the first priority that has a healthy server), at ringEntriesPerWeight entries per unit of weight,
// minus one so that rounding can only land on the intended count: each server then has 256*w entries
// (weights divided by their common divisor) whatever the others do. Beyond ringCap entries the ring
// stays at ringCap, and a change of one of n servers moves about 1/n of the other keys.
//
// Sizes the upstream sets are used as given (Envoy's semantics: a fixed ring).
func applyRingSize(c *cluster.Cluster, u *registry.Upstream, g Group) {
	cfg := c.GetRingHashLbConfig()
	if cfg == nil || cfg.MinimumRingSize != nil || cfg.MaximumRingSize != nil {
		return
	}
	size := uint64(ringCap)
	if units := weightUnits(carryingServers(u, g)); units*ringEntriesPerWeight <= ringCap {
		size = max(units*ringEntriesPerWeight-1, 1)
	}
	cfg.MinimumRingSize, cfg.MaximumRingSize = wrapperspb.UInt64(size), wrapperspb.UInt64(ringCap)
}

// carryingServers are the servers that take g's traffic: those of the first priority with a server
// that takes traffic; if none does, the first priority (both Envoy and gRPC then use all its servers).
func carryingServers(u *registry.Upstream, g Group) []*registry.Server {
	best, bestHealthy := -1, false
	for i := range u.Servers {
		s := &u.Servers[i]
		r, ok := rankOf(s, g), takesTraffic(s)
		if best < 0 || ok && !bestHealthy || ok == bestHealthy && r < best {
			best, bestHealthy = r, ok
		}
	}
	var out []*registry.Server
	for i := range u.Servers {
		s := &u.Servers[i]
		if rankOf(s, g) == best && (takesTraffic(s) || !bestHealthy) {
			out = append(out, s)
		}
	}
	return out
}

// weightUnits is the servers' total weight in units of the weights' greatest common divisor, so that
// weights 10 and 20 size the ring like 1 and 2.
func weightUnits(servers []*registry.Server) uint64 {
	var d, sum uint64
	for _, s := range servers {
		w := uint64(s.EffectiveWeight())
		d, sum = gcd(d, w), sum+w
	}
	if d == 0 {
		return 1
	}
	return sum / d
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
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
