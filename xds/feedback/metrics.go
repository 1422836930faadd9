package feedback

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	failuresReported = promauto.NewCounter(prometheus.CounterOpts{
		Name: "dynup_feedback_failures_total", Help: "Failures reported to the fleet-wide tracker (LRS and POST /feedback).",
	})
	serversTakenOut = promauto.NewCounter(prometheus.CounterOpts{
		Name: "dynup_feedback_ejections_total", Help: "Times the fleet-wide tracker took a server out.",
	})
	serversOut = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "dynup_feedback_servers_out", Help: "Servers the fleet-wide tracker has out now.",
	})
	lrsStreams = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "dynup_lrs_streams", Help: "Open load reporting (LRS) streams.",
	})
	lrsReports = promauto.NewCounter(prometheus.CounterOpts{
		Name: "dynup_lrs_reports_total", Help: "Load reports received over LRS.",
	})
)
