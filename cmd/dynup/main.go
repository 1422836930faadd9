// Command dynup is a control plane that gives Envoy fleets and proxyless gRPC clients dynamic upstreams.
//
// This file only wires the pipeline: sources → registry.Store → translate → publish → serve.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dynup/dynup/adminapi"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/serve"
	"github.com/dynup/dynup/xds/translate"
)

type config struct {
	adminAddr    string
	xdsAddr      string
	dataDir      string
	listenerAddr string
	listenerPort uint
	maxBody      int64
	logFormat    string
	logLevel     string
	debugAddr    string
	consul       consulFlags
	security     securityFlags
	health       healthFlags
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("dynup", flag.ContinueOnError)
	fs.StringVar(&c.adminAddr, "admin-addr", "127.0.0.1:1995", "admin API address (Slardar's port); keep it on loopback")
	fs.StringVar(&c.xdsAddr, "xds-addr", "127.0.0.1:18000", "xDS (ADS) gRPC address Envoys and gRPC clients connect to")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "directory of the local file store (dynup.json and the dynup.journal of writes since)")
	fs.StringVar(&c.listenerAddr, "http-listener-address", "0.0.0.0", "address of the HTTP listener dynup gives Envoy nodes")
	fs.UintVar(&c.listenerPort, "http-listener-port", 10000, "port of the HTTP listener dynup gives Envoy nodes")
	fs.Int64Var(&c.maxBody, "max-body-bytes", adminapi.DefaultMaxBodyBytes, "largest admin request body accepted; larger ones get 413")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's CPU and memory profiles (/debug/pprof/) on this loopback address; off when empty")
	c.consul.register(fs)
	c.security.register(fs)
	c.health.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: dynup [flags]\n       dynup bootstrap --help   (print an Envoy bootstrap for dynup)\n\nServes upstreams from the admin API and the local store (or Consul) over xDS (ADS).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.listenerPort == 0 || c.listenerPort > 65535 {
		err := fmt.Errorf("--http-listener-port %d is not a port", c.listenerPort)
		fmt.Fprintln(fs.Output(), err) // main exits 2 without printing errors that are not the flag package's
		return c, err
	}
	if c.debugAddr != "" && !loopbackAddr(c.debugAddr) {
		err := fmt.Errorf("--debug-addr %q is not a loopback address: the profiles have no authentication", c.debugAddr)
		fmt.Fprintln(fs.Output(), err)
		return c, err
	}
	if err := c.security.check(c.adminAddr); err != nil {
		fmt.Fprintln(fs.Output(), err)
		return c, err
	}
	return c, nil
}

func newLogger(c config) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is not text or json", c.logFormat)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bootstrap" {
		os.Exit(runBootstrap(os.Args[2:], os.Stdout, os.Stderr))
	}
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		os.Exit(2)
	}
	log, err := newLogger(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("dynup stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger) error {
	store, srcs, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}

	if c.debugAddr != "" {
		stopDebug, err := serveDebug(c.debugAddr, log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	ro := rollout.New(store)
	pub := publish.New(translate.Options{HTTPListenerAddress: c.listenerAddr, HTTPListenerPort: uint32(c.listenerPort)}, log, ro)
	states, unsubscribe := store.Subscribe()
	defer unsubscribe()
	pub.Publish(<-states) // the first snapshot exists before any node can ask
	go pub.Run(states)

	tracker := nodes.NewTracker(ro, log)
	xdsOpts, err := c.security.xdsServerOptions(log)
	if err != nil {
		return err
	}
	adminTLS, err := c.security.adminTLS(log)
	if err != nil {
		return err
	}
	grpcServer := serve.NewGRPCServer(ctx, pub.Cache(), tracker, xdsOpts...)
	health, err := setupHealth(ctx, c.health, store, grpcServer, log)
	if err != nil {
		return err
	}
	xdsLis, err := net.Listen("tcp", c.xdsAddr)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", c.adminAddr)
	if err != nil {
		xdsLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	admin := newAdminServer(adminapi.New(adminapi.Deps{Store: store, Publisher: pub, Nodes: tracker, Rollout: ro, Sources: srcs, Health: health,
		Log: log, MaxBodyBytes: c.maxBody, Auth: c.security.adminAuth(log)}), adminTLS)

	errs := make(chan error, 2)
	go func() { errs <- grpcServer.Serve(xdsLis) }()
	go func() { errs <- c.security.serveAdmin(admin, adminLis) }()
	log.Info("listening", "admin", adminLis.Addr().String(), "xds", xdsLis.Addr().String(),
		"admin_auth", len(c.security.tokens) > 0, "admin_tls", adminTLS != nil, "xds_tls", c.security.xdsTLSCert != "",
		"store", store.BackendName(), "revision", store.State().Revision, "version", store.State().Hash)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errs:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin.Shutdown(shutdownCtx) // finishes in-flight writes; every accepted write is already on disk
	// xDS streams never end by themselves, so a graceful stop waits only briefly before closing them.
	stopped := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		grpcServer.Stop()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
