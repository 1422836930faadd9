package publish

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	translationSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "dynup_translation_seconds", Help: "Time to translate, check and encode one group's snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	snapshotBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dynup_snapshot_bytes", Help: "Encoded size of each group's resources, by type.",
	}, []string{"group", "type"})
	publishErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_publish_errors_total", Help: "Snapshots not published because translation failed (the last good one stays).",
	}, []string{"group"})
)
