package nodes

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/dynup/dynup/registry"
)

var (
	streamsOpen = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dynup_xds_streams", Help: "Connected xDS streams that identified their node, by node group.",
	}, []string{"group"})
	pushes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_xds_responses_total", Help: "xDS responses sent, by resource type.",
	}, []string{"type"})
	acks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_xds_acks_total", Help: "xDS responses ACKed by nodes, by resource type.",
	}, []string{"type"})
	nacks = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_xds_nacks_total", Help: "xDS responses rejected (NACKed) by nodes, by resource type.",
	}, []string{"type"})
)

// shortType turns a type URL into its message name ("Cluster", "ClusterLoadAssignment", ...).
func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

func revisions(cs []registry.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Revision
	}
	return out
}
