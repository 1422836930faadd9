package groupcache

import (
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	encodesMetric = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_xds_encodes_total",
		Help: "Resources marshalled for serving, by type. Each is encoded once per snapshot that changes it, never per stream.",
	}, []string{"type"})
	fanoutSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "dynup_xds_fanout_seconds",
		Help:    "Time to hand a new snapshot to every waiting stream of its group (the responses are then sent by each stream).",
		Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
	})
	fanoutResponses = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_xds_fanout_responses_total",
		Help: "Responses queued to waiting streams when a snapshot changed, by type.",
	}, []string{"type"})
	encodes atomic.Uint64
)

// Encodes returns how many resources were marshalled since the process started: benchmarks and tests use
// it to show that encoding grows with changes, not with streams.
func Encodes() uint64 { return encodes.Load() }

func countEncode(typeURL string) {
	encodes.Add(1)
	encodesMetric.WithLabelValues(shortType(typeURL)).Inc()
}

// shortType turns a type URL into its message name ("Cluster", "ClusterLoadAssignment", ...).
func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }
