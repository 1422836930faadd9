package translate

import (
	"math"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
)

// maxOutlierInterval bounds the ejection sweep: consecutive-failure ejections are immediate in Envoy, but
// returns happen on the sweep, so a long interval would keep servers out well past fail_timeout.
const maxOutlierInterval = time.Second

// GRPCFailurePercentageThreshold is the failure share above which a gRPC client ejects a server (gRPC has
// no consecutive-failure detection, only failure percentage and success rate; gRFC A50). Together with the
// request volume below it means: more than max_fails failed calls, and more than 40% of the calls, within
// one interval.
const GRPCFailurePercentageThreshold = 40

// Envoy's panic threshold is a whole percentage (it rounds the configured value), so 1% is the lowest that
// still means something: below it, Envoy spreads traffic over every server instead of none.
const protectedPanicPercent = 1

// envoyOutlierDetection is checkups' max_fails/fail_timeout as Envoy's per-cluster outlier detection:
// max_fails consecutive local-origin failures (connect failure, timeout, reset) or gateway errors (502,
// 503, 504) eject a server for fail_timeout, every time (max_ejection_time = base_ejection_time, where
// Envoy would otherwise double the time on each ejection). Plain 5xx answers and success-rate statistics
// are not enforced: Slardar's nginx retries and counts "error timeout http_502" only, and a 500 is the
// application's answer. Any share of servers may be ejected; the panic threshold (commonLbConfig) is what
// keeps traffic flowing when every server is out.
func envoyOutlierDetection(u *registry.Upstream) *cluster.OutlierDetection {
	p := healthcheck.ClusterPassive(u)
	if p.Off() {
		return nil
	}
	n := wrapperspb.UInt32(uint32(p.MaxFails))
	return &cluster.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		ConsecutiveLocalOriginFailure:          n,
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100),
		ConsecutiveGatewayFailure:              n,
		EnforcingConsecutiveGatewayFailure:     wrapperspb.UInt32(100),
		EnforcingConsecutive_5Xx:               wrapperspb.UInt32(0),
		EnforcingSuccessRate:                   wrapperspb.UInt32(0),
		EnforcingLocalOriginSuccessRate:        wrapperspb.UInt32(0),
		Interval:                               durationpb.New(min(maxOutlierInterval, p.FailTimeout)),
		BaseEjectionTime:                       durationpb.New(p.FailTimeout),
		MaxEjectionTime:                        durationpb.New(p.FailTimeout),
		MaxEjectionPercent:                     wrapperspb.UInt32(100),
	}
}

// grpcOutlierDetection is the same rule in the form gRPC implements: failure percentage. A server with
// at least RequestVolume calls in an interval, more than 40% of them failed, is ejected for fail_timeout.
// The volume is chosen so that an ejection needs more than max_fails failures.
//
// gRPC has no panic mode: a server it ejects takes no calls even if all are ejected. So for a protected
// upstream the ejectable share is capped to leave one server in the last priority (gRPC ejects per
// priority, while fewer than max_ejection_percent of that priority's servers are out, and fails over to
// the next priority when all of one are out). With a single server there, nothing is ejected.
func grpcOutlierDetection(u *registry.Upstream, g Group) *cluster.OutlierDetection {
	p := healthcheck.ClusterPassive(u)
	if p.Off() {
		return nil
	}
	volume := uint32(math.Ceil(float64(p.MaxFails) * 100 / GRPCFailurePercentageThreshold))
	maxPercent := uint32(100)
	if healthcheck.Protected(u) {
		maxPercent = 0 // one server: it is never ejected
		if n := lastPriority(u, g); n > 1 {
			maxPercent = uint32(100 * (n - 1) / n)
		}
	}
	return &cluster.OutlierDetection{
		Interval:                       durationpb.New(min(maxOutlierInterval, p.FailTimeout)),
		BaseEjectionTime:               durationpb.New(p.FailTimeout),
		MaxEjectionTime:                durationpb.New(p.FailTimeout),
		MaxEjectionPercent:             wrapperspb.UInt32(maxPercent),
		EnforcingSuccessRate:           wrapperspb.UInt32(0),
		FailurePercentageThreshold:     wrapperspb.UInt32(GRPCFailurePercentageThreshold),
		EnforcingFailurePercentage:     wrapperspb.UInt32(100),
		FailurePercentageMinimumHosts:  wrapperspb.UInt32(1),
		FailurePercentageRequestVolume: wrapperspb.UInt32(volume),
	}
}

// lastPriority counts the servers (not down) of the last priority the group sees, ranking servers as
// buildEndpoints does: failover level, then the node's own zone before the others. Only the last priority
// needs a server left: when every server of an earlier one is ejected, gRPC fails over to the next.
func lastPriority(u *registry.Upstream, g Group) int {
	last, n := -1, 0
	for i := range u.Servers {
		s := &u.Servers[i]
		if s.Down {
			continue
		}
		rank := s.Level * 2
		if g.Zone != "" && s.Zone != g.Zone {
			rank++
		}
		switch {
		case rank > last:
			last, n = rank, 1
		case rank == last:
			n++
		}
	}
	return n
}

// commonLbConfig sets Envoy's panic threshold from "protected": when fewer than 1% of a priority's
// servers are usable (for up to 100 servers: none), a protected upstream spreads traffic over all of them
// rather than failing every request; an unprotected one never panics. Envoy's default, 50%, would send
// traffic to servers dynup or outlier detection took out as soon as half of them are out.
func commonLbConfig(c *cluster.Cluster, u *registry.Upstream) {
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &cluster.Cluster_CommonLbConfig{}
	}
	threshold := 0.0
	if healthcheck.Protected(u) {
		threshold = protectedPanicPercent
	}
	c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: threshold}
}
