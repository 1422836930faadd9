package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/dynup/dynup/adminapi"
	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/serve"
	"github.com/dynup/dynup/xds/translate"
)

// startInProcess runs dynup's pipeline (file store → publish → serve, admin API) inside the tool, wired as
// cmd/dynup wires it in file mode but without the health checker, failure feedback (LRS) and the xDS
// server's limits and TLS, so that one CPU profile (-cpuprofile) shows dynup's work (less theirs). CPU and
// memory figures then include the simulated fleet: use the subprocess for those.
func startInProcess(ctx context.Context, dataDir string) (*target, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend, err := registry.NewFileBackend(dataDir)
	if err != nil {
		return nil, err
	}
	store, err := registry.NewStore(ctx, backend)
	if err != nil {
		return nil, err
	}
	ro := rollout.New(store)
	pub := publish.New(translate.DefaultOptions(), log, ro)
	states, unsubscribe := store.Subscribe()
	pub.Publish(<-states)
	go pub.Run(states)
	tracker := nodes.NewTracker(ro, log)
	ctx, cancel := context.WithCancel(ctx)
	grpcServer := serve.NewGRPCServer(ctx, pub.Cache(), tracker)
	xdsLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	adminLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		xdsLis.Close()
		return nil, err
	}
	admin := &http.Server{Handler: adminapi.New(adminapi.Deps{Store: store, Publisher: pub, Nodes: tracker, Rollout: ro, Log: log})}
	go grpcServer.Serve(xdsLis)
	go admin.Serve(adminLis)
	return &target{admin: adminLis.Addr().String(), xds: xdsLis.Addr().String(), pid: os.Getpid(), logs: &tail{},
		stop: func() error {
			cancel()
			grpcServer.Stop()
			unsubscribe()
			return admin.Close()
		}}, nil
}
