package nodes

import (
	"strings"
	"sync"

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

// typeCounters are one type's counters, resolved once: a label lookup per ACK adds up over a fleet.
type typeCounters struct{ pushes, acks, nacks prometheus.Counter }

var byType sync.Map // type URL → *typeCounters

func countersFor(typeURL string) *typeCounters {
	if c, ok := byType.Load(typeURL); ok {
		return c.(*typeCounters)
	}
	short := shortType(typeURL)
	c, _ := byType.LoadOrStore(typeURL, &typeCounters{pushes: pushes.WithLabelValues(short),
		acks: acks.WithLabelValues(short), nacks: nacks.WithLabelValues(short)})
	return c.(*typeCounters)
}

// shortType turns a type URL into its message name ("Cluster", "ClusterLoadAssignment", ...).
func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

func revisions(cs []registry.Change) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Revision
	}
	return out
}
