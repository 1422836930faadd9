package consul

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Watch metrics are labelled by watch kind (consul-catalog, consul-health, consul-kv), not by service:
// one series per service would grow with the catalog.
var (
	watchCalls = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name: "dynup_consul_watch_seconds",
		Help: "Duration of Consul watch calls by kind and outcome: change (the index moved; a blocking query " +
			"returns as soon as Consul has the change, so this is the watch latency), unchanged (the wait " +
			"expired) or error.",
		Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 60, 300, 600},
	}, []string{"watch", "outcome"})
	watchErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_consul_watch_errors_total", Help: "Failed Consul watch calls by kind (the last good state stays).",
	}, []string{"watch"})
)

// watchKind is the part of a source name before its first "/": "consul-health/web" → "consul-health".
func watchKind(source string) string {
	kind, _, _ := strings.Cut(source, "/")
	return kind
}
