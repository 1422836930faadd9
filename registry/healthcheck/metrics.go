package healthcheck

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	probes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "dynup_health_probes_total", Help: "Probes dynup's own checker ran, by check type and result.",
	}, []string{"type", "result"})
	unhealthyServers = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "dynup_health_unhealthy_servers", Help: "Servers dynup's own checker currently reports unhealthy.",
	})
)
