package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/consul"
)

// consulFlags are the Consul mode settings. Consul's own environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_SSL, ...) is read as the Consul CLI reads it; flags win over it.
type consulFlags struct {
	addr, token, datacenter, prefix, tag string
	stale                                bool
}

func (f *consulFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "consul-addr", os.Getenv("CONSUL_HTTP_ADDR"), "Consul HTTP address; turns Consul mode on (default $CONSUL_HTTP_ADDR)")
	fs.StringVar(&f.token, "consul-token", "", "Consul ACL token (default $CONSUL_HTTP_TOKEN)")
	fs.StringVar(&f.datacenter, "consul-datacenter", "", "Consul datacenter (default: the agent's)")
	fs.StringVar(&f.prefix, "consul-prefix", "dynup/", "Consul KV prefix: upstreams live at <prefix>upstreams/<name>, Lua snippets at <prefix>lua/<name>")
	fs.StringVar(&f.tag, "consul-service-tag", "", "only services with this tag become upstreams (default: every service but consul)")
	fs.BoolVar(&f.stale, "consul-stale", false, "allow stale reads from any Consul server (faster, may lag the leader)")
}

func (f *consulFlags) enabled() bool { return f.addr != "" }

// sources is what the admin API reports about each source.
type sources func() []registry.SourceStatus

// openStore opens the file store, or in Consul mode the KV-backed store fed by the catalog. In Consul mode it
// waits for Consul: serving before the first complete read would push an incomplete state to every node.
func openStore(ctx context.Context, c config, log *slog.Logger) (*registry.Store, sources, error) {
	if !c.consul.enabled() {
		backend, err := registry.NewFileBackend(c.dataDir)
		if err != nil {
			return nil, nil, err
		}
		store, err := registry.NewStore(ctx, backend)
		return store, func() []registry.SourceStatus { return nil }, err
	}
	cc := api.DefaultConfig()
	cc.Address = c.consul.addr
	if c.consul.token != "" {
		cc.Token = c.consul.token
	}
	if c.consul.datacenter != "" {
		cc.Datacenter = c.consul.datacenter
	}
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("consul client: %w", err)
	}
	opts := consul.Options{Stale: c.consul.stale}
	kv := consul.NewKV(client, c.consul.prefix, opts)
	var store *registry.Store
	if err := untilConsul(ctx, log, "load KV", func() (err error) { store, err = registry.NewStore(ctx, kv); return err }); err != nil {
		return nil, nil, err
	}
	catalog := consul.NewCatalog(client, store, c.consul.tag, opts)
	if err := untilConsul(ctx, log, "read the catalog", func() error { return catalog.Sync(ctx) }); err != nil {
		return nil, nil, err
	}
	go kv.Run(ctx, store)
	go catalog.Run(ctx)
	return store, func() []registry.SourceStatus {
		return append([]registry.SourceStatus{kv.Status()}, catalog.Status()...)
	}, nil
}

// untilConsul retries op with capped back-off until it succeeds or ctx ends.
func untilConsul(ctx context.Context, log *slog.Logger, what string, op func() error) error {
	backoff := 200 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return nil
		}
		log.Warn("waiting for Consul", "step", what, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}
