package translate

import (
	"net"
	"sort"
	"strconv"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
)

// buildEndpoints groups servers into localities by (priority, zone).
//
// Priority order: failover level first, then, for a node that declared a zone, its own zone before the
// others ("local first"). So backup servers stay below every primary server, local or remote. Priorities are
// then renumbered to be contiguous from 0: both Envoy and gRPC reject gaps, and a set with only backups or
// only remote servers would otherwise start at 1.
//
// gRPC's round_robin ignores server weights and balances localities by their weights instead (picking a
// locality at random by weight), so for gRPC round_robin a locality whose servers have different weights
// is split into one locality per server (sub-zone "host:port") weighing its server weight: weighted
// balancing, as Envoy does it. Localities whose servers weigh the same stay whole, so gRPC rotates through
// them in strict round robin, as nginx does; that also makes a retry go to the next server. Ring hash and
// least request flatten localities, so they keep one locality per zone.
func buildEndpoints(u *registry.Upstream, g Group) *endpoint.ClusterLoadAssignment {
	type key struct {
		rank      int
		zone, sub string
	}
	splitUneven := g.Kind == KindGRPC && policyFor(u.LB, g.Kind) == "round_robin"
	uneven := map[key]bool{}
	if splitUneven {
		first := map[key]int{}
		for i := range u.Servers {
			s := &u.Servers[i]
			k := key{rank: rankOf(s, g), zone: s.Zone}
			if w, seen := first[k]; !seen {
				first[k] = s.EffectiveWeight()
			} else if w != s.EffectiveWeight() {
				uneven[k] = true
			}
		}
	}
	groups := map[key]*endpoint.LocalityLbEndpoints{}
	for i := range u.Servers {
		s := &u.Servers[i]
		k := key{rank: rankOf(s, g), zone: s.Zone}
		if uneven[k] {
			k.sub = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		}
		loc := groups[k]
		if loc == nil {
			loc = &endpoint.LocalityLbEndpoints{Locality: &core.Locality{Zone: s.Zone, SubZone: k.sub}, LoadBalancingWeight: wrapperspb.UInt32(0)}
			groups[k] = loc
		}
		loc.LbEndpoints = append(loc.LbEndpoints, lbEndpoint(s))
		// A locality weighs as much as its servers, so locality-weighted balancing keeps server weights.
		loc.LoadBalancingWeight.Value += uint32(s.EffectiveWeight())
	}
	ks := make([]key, 0, len(groups))
	for k := range groups {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].rank != ks[j].rank {
			return ks[i].rank < ks[j].rank
		}
		if ks[i].zone != ks[j].zone {
			return ks[i].zone < ks[j].zone
		}
		return ks[i].sub < ks[j].sub
	})
	cla := &endpoint.ClusterLoadAssignment{ClusterName: u.Name}
	priority, lastRank := uint32(0), -1
	for _, k := range ks {
		if lastRank >= 0 && k.rank != lastRank {
			priority++
		}
		lastRank = k.rank
		loc := groups[k]
		loc.Priority = priority
		cla.Endpoints = append(cla.Endpoints, loc)
	}
	if priority > 0 && g.Kind != KindGRPC {
		cla.Policy = &endpoint.ClusterLoadAssignment_Policy{OverprovisioningFactor: wrapperspb.UInt32(strictOverprovisioning)}
	}
	return cla
}

// strictOverprovisioning makes Envoy's priority failover strict, as checkups' levels and gRPC's priorities
// are: a priority keeps all traffic while one of its servers is usable. Envoy rates a priority's health as
// factor% times its usable share of servers, capped at 100%, and sends the shortfall to the next
// priority; with its default factor (140%) traffic would start leaving the local zone, or reach backups,
// once fewer than 72% of the servers are usable. This factor rates one usable server of MaxServers at 100%.
const strictOverprovisioning = 100 * registry.MaxServers

// rankOf orders a server for group g before priorities are renumbered: failover level first, then
// (for a node in a zone) the node's own zone before the others.
func rankOf(s *registry.Server, g Group) int {
	rank := s.Level * 2
	if g.Zone != "" && s.Zone != g.Zone {
		rank++
	}
	return rank
}

// takesTraffic says whether a node may pick the server: one that is down or that a health source took
// out is published UNHEALTHY, and Envoy and gRPC skip it.
func takesTraffic(s *registry.Server) bool { return !s.Down && s.Health == nil }

func lbEndpoint(s *registry.Server) *endpoint.LbEndpoint {
	health := core.HealthStatus_UNKNOWN
	if !takesTraffic(s) {
		health = core.HealthStatus_UNHEALTHY
	}
	return &endpoint.LbEndpoint{
		HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: socketAddress(s.Host, uint32(s.Port)),
		}},
		HealthStatus:        health,
		LoadBalancingWeight: wrapperspb.UInt32(uint32(s.EffectiveWeight())),
	}
}

func socketAddress(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}
