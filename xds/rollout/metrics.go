package rollout

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var propagation = promauto.NewHistogram(prometheus.HistogramOpts{
	Name:    "dynup_propagation_seconds",
	Help:    "Time from a change being accepted to a node ACKing a version that contains it, per node.",
	Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
})
