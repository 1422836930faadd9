package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/dynup/dynup/adminapi"
	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
	"github.com/dynup/dynup/xds/feedback"
)

// healthFlags turn dynup's own health sources on and off: its heartbeat checker (for upstreams whose
// health_check.checker is dynup or both) and fleet-wide failure feedback (LRS on the xDS port and POST
// /feedback). Envoy's own checks and outlier detection are settings of each upstream, not flags.
type healthFlags struct {
	checker           bool
	maxProbes         int
	feedback          bool
	lrsReportInterval time.Duration
}

func (f *healthFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.checker, "health-checker", true, "run dynup's own health checks for upstreams with health_check.checker dynup or both")
	fs.IntVar(&f.maxProbes, "health-max-probes", healthcheck.DefaultMaxProbes, "most health probes dynup runs at the same time")
	fs.BoolVar(&f.feedback, "feedback", true, "count failures nodes report (LRS on the xDS port, POST /feedback) and take failing servers out fleet-wide")
	fs.DurationVar(&f.lrsReportInterval, "lrs-report-interval", feedback.DefaultReportInterval, "how often nodes are asked to report load (LRS)")
}

func (f *healthFlags) check() error {
	if f.maxProbes < 1 {
		return fmt.Errorf("--health-max-probes %d must be at least 1", f.maxProbes)
	}
	if f.lrsReportInterval < 100*time.Millisecond || f.lrsReportInterval > time.Hour {
		return fmt.Errorf("--lrs-report-interval %s must be between 100ms and 1h", f.lrsReportInterval)
	}
	return nil
}

// setupHealth starts the checker and the failure tracker (until ctx ends) and registers the LRS service on
// the xDS gRPC server, which must not be serving yet. It returns what the admin API's health endpoints
// need.
func setupHealth(ctx context.Context, f healthFlags, store *registry.Store, xds *grpc.Server, log *slog.Logger) (adminapi.HealthDeps, error) {
	if err := f.check(); err != nil {
		return adminapi.HealthDeps{}, err
	}
	var d adminapi.HealthDeps
	if f.checker {
		d.Checker = healthcheck.New(store, log.With("component", "health-checker"), f.maxProbes)
		go d.Checker.Run(ctx)
	}
	if f.feedback {
		d.Tracker = feedback.New(store, log.With("component", "feedback"))
		go d.Tracker.Run(ctx)
		d.LRS = feedback.NewLRS(d.Tracker, store, f.lrsReportInterval, log.With("component", "lrs"))
		d.LRS.Register(xds)
	}
	return d, nil
}
