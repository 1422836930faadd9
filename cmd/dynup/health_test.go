package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/dynup/dynup/registry"
)

func TestHealthFlags(t *testing.T) {
	parse := func(args ...string) (healthFlags, error) {
		var f healthFlags
		fs := flag.NewFlagSet("dynup", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			return f, err
		}
		return f, f.check()
	}
	f, err := parse()
	if err != nil || !f.checker || !f.feedback || f.maxProbes != 256 || f.lrsReportInterval.String() != "2s" {
		t.Fatalf("defaults: %+v %v", f, err)
	}
	for _, bad := range [][]string{{"--health-max-probes", "0"}, {"--lrs-report-interval", "10ms"}} {
		if _, err := parse(bad...); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: %v, want an error naming the flag", bad, err)
		}
	}

	// Everything off: no checker, no tracker, no LRS service.
	backend, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	off, _ := parse("--health-checker=false", "--feedback=false")
	g := grpc.NewServer()
	d, err := setupHealth(ctx, off, store, g, log)
	if err != nil || d.Checker != nil || d.Tracker != nil || d.LRS != nil || len(g.GetServiceInfo()) != 0 {
		t.Fatalf("all off: %+v %v, services %v", d, err, g.GetServiceInfo())
	}
	on, _ := parse()
	g = grpc.NewServer()
	d, err = setupHealth(ctx, on, store, g, log)
	if _, lrs := g.GetServiceInfo()["envoy.service.load_stats.v3.LoadReportingService"]; err != nil || d.Checker == nil || d.Tracker == nil || !lrs {
		t.Fatalf("defaults: %+v %v, services %v", d, err, g.GetServiceInfo())
	}
}
