package publish

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	translationSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dynup_translation_seconds", Help: "Time to translate, check and encode one group's snapshot, by path (full, endpoints, unchanged).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"path"})
	publishes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_publishes_total", Help: "Group snapshots built, by path: full translation, endpoint path (only changed upstreams), unchanged, failed.",
	}, []string{"path"})
	waitSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "dynup_publish_wait_seconds", Help: "Time from a change being accepted to its publish starting: queueing and burst coalescing (debounce).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	publishSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "dynup_publish_seconds", Help: "Time to publish one state to every group: translation, encoding and handing snapshots to waiting streams.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	coalesced = promauto.NewCounter(prometheus.CounterOpts{
		Name: "dynup_publish_coalesced_total", Help: "States skipped because a newer one came within the coalescing window.",
	})
	snapshotBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dynup_snapshot_bytes", Help: "Encoded size of each group's resources, by type.",
	}, []string{"group", "type"})
	publishErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_publish_errors_total", Help: "Snapshots not published because translation failed (the last good one stays).",
	}, []string{"group"})
)
