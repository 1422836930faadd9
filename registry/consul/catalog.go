package consul

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
)

// CatalogSource is the name under which catalog servers enter the store.
const CatalogSource = "consul-catalog"

// Service meta keys dynup reads (documented in the README).
const (
	MetaWeight  = "weight"        // a server's weight when Weights.Passing is not set
	MetaZone    = "zone"          // a server's zone (else the node's meta "zone")
	MetaDomains = "dynup-domains" // comma-separated Host names of the service
)

// Catalog watches the service list and, per selected service, its instances and their health.
//
// One blocking query watches the service list; one per service watches that service's health, so a change
// to one service re-fetches only that service. An instance is a server while its checks are passing or
// warning; a warning instance gets the service's Weights.Warning (Consul's own DNS semantics), critical and
// maintenance instances are left out.
type Catalog struct {
	client *api.Client
	store  *registry.Store
	opts   Options
	// Tag selects the services that carry it; empty selects every service but consul itself.
	Tag string

	mu       sync.Mutex
	services map[string]registry.DiscoveredService
	watches  map[string]context.CancelFunc
	status   map[string]*statusCell
	list     *statusCell
	warnings map[string]string // per service: why some instances were skipped
}

// NewCatalog returns a catalog source writing into store.
func NewCatalog(client *api.Client, store *registry.Store, tag string, opts Options) *Catalog {
	return &Catalog{client: client, store: store, opts: opts.withDefaults(), Tag: tag,
		services: map[string]registry.DiscoveredService{}, watches: map[string]context.CancelFunc{},
		status: map[string]*statusCell{}, list: newStatus("consul-catalog/services"), warnings: map[string]string{}}
}

// Sync loads every selected service once and pushes them to the store as one change, so the first state
// is complete (a partial first state would remove clusters from every Envoy that reconnects).
func (c *Catalog) Sync(ctx context.Context) error {
	names, _, err := c.listServices((&api.QueryOptions{AllowStale: c.opts.Stale}).WithContext(ctx))
	if err != nil {
		c.list.fail(err)
		return err
	}
	for _, name := range names {
		ds, _, err := c.fetchService(name, (&api.QueryOptions{AllowStale: c.opts.Stale}).WithContext(ctx))
		if err != nil {
			return err
		}
		c.services[name] = ds
	}
	c.push()
	return nil
}

// Run watches until ctx ends. Call Sync first.
func (c *Catalog) Run(ctx context.Context) {
	blockingQuery(ctx, c.opts, c.list, func(q *api.QueryOptions) (uint64, error) {
		names, index, err := c.listServices(q)
		if err != nil {
			return 0, err
		}
		c.reconcile(ctx, names)
		return index, nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cancel := range c.watches {
		cancel()
	}
}

func (c *Catalog) listServices(q *api.QueryOptions) ([]string, uint64, error) {
	all, meta, err := c.client.Catalog().Services(q)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	for name, tags := range all {
		if c.selected(name, tags) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, meta.LastIndex, nil
}

func (c *Catalog) selected(name string, tags []string) bool {
	if c.Tag == "" {
		return name != "consul"
	}
	return slices.Contains(tags, c.Tag)
}

// reconcile starts a watch for each new service and drops services that left the catalog. A service that
// left is a real change (Registrator deregistered it), unlike a failed query, which changes nothing.
func (c *Catalog) reconcile(ctx context.Context, names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	removed := false
	for name, cancel := range c.watches {
		if !slices.Contains(names, name) {
			cancel()
			delete(c.watches, name)
			delete(c.status, name)
			delete(c.services, name)
			removed = true
		}
	}
	for name := range c.services { // synced but never watched, and gone since
		if !slices.Contains(names, name) {
			delete(c.services, name)
			removed = true
		}
	}
	for _, name := range names {
		if _, ok := c.watches[name]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		c.watches[name] = cancel
		st := newStatus("consul-health/" + name)
		c.status[name] = st
		go c.watchService(wctx, name, st)
	}
	if removed {
		c.pushLocked()
	}
}

func (c *Catalog) watchService(ctx context.Context, name string, st *statusCell) {
	blockingQuery(ctx, c.opts, st, func(q *api.QueryOptions) (uint64, error) {
		ds, index, err := c.fetchService(name, q)
		if err != nil {
			return 0, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, watched := c.watches[name]; watched && ctx.Err() == nil {
			c.services[name] = ds
			c.pushLocked()
		}
		return index, nil
	})
}

func (c *Catalog) fetchService(name string, q *api.QueryOptions) (registry.DiscoveredService, uint64, error) {
	entries, meta, err := c.client.Health().Service(name, "", false, q)
	if err != nil {
		return registry.DiscoveredService{}, 0, err
	}
	ds, skipped := servicesFromEntries(entries)
	c.mu.Lock()
	if skipped != "" {
		c.warnings[name] = skipped
	} else {
		delete(c.warnings, name)
	}
	c.mu.Unlock()
	return ds, meta.LastIndex, nil
}

// servicesFromEntries turns health entries into servers. An instance whose address is not an IP is
// skipped, and said so, rather than failing the service.
func servicesFromEntries(entries []*api.ServiceEntry) (registry.DiscoveredService, string) {
	var ds registry.DiscoveredService
	var skipped []string
	seen := map[netip.AddrPort]bool{}
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Node == nil {
			// Consul always sends both; a proxy or a future version that does not must not crash the watch.
			skipped = append(skipped, "an entry without its node or service")
			continue
		}
		s := e.Service
		status := e.Checks.AggregatedStatus()
		if status != api.HealthPassing && status != api.HealthWarning {
			continue
		}
		host := s.Address
		if host == "" {
			host = e.Node.Address
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || s.Port <= 0 || s.Port > 65535 {
			skipped = append(skipped, fmt.Sprintf("instance %s: address %q port %d is not an IP address and port", s.ID, host, s.Port))
			continue
		}
		ap := netip.AddrPortFrom(addr, uint16(s.Port))
		if seen[ap] {
			continue
		}
		seen[ap] = true
		ds.Servers = append(ds.Servers, registry.Server{
			Host: addr.String(), Port: s.Port, Weight: weightOf(s, status), Zone: zoneOf(e), Source: "consul",
		})
		if d := s.Meta[MetaDomains]; d != "" && len(ds.Domains) == 0 {
			for _, part := range strings.Split(d, ",") {
				if part = strings.ToLower(strings.TrimSpace(part)); part != "" {
					ds.Domains = append(ds.Domains, part)
				}
			}
		}
	}
	sort.Slice(ds.Servers, func(i, j int) bool {
		if ds.Servers[i].Host != ds.Servers[j].Host {
			return ds.Servers[i].Host < ds.Servers[j].Host
		}
		return ds.Servers[i].Port < ds.Servers[j].Port
	})
	return ds, strings.Join(skipped, "; ")
}

func weightOf(s *api.AgentService, status string) int {
	if status == api.HealthWarning && s.Weights.Warning > 0 {
		return s.Weights.Warning
	}
	if s.Weights.Passing > 0 {
		return s.Weights.Passing
	}
	if w, err := strconv.Atoi(s.Meta[MetaWeight]); err == nil && w > 0 {
		return w
	}
	return 1
}

func zoneOf(e *api.ServiceEntry) string {
	if z := e.Service.Meta[MetaZone]; z != "" {
		return z
	}
	return e.Node.Meta[MetaZone]
}

func (c *Catalog) push() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushLocked()
}

func (c *Catalog) pushLocked() {
	d := make(registry.Discovered, len(c.services))
	for k, v := range c.services {
		d[k] = v
	}
	c.store.SetDiscovered(CatalogSource, d)
}

// Status reports the service-list watch and every service watch.
func (c *Catalog) Status() []registry.SourceStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []registry.SourceStatus{c.list.get()}
	names := make([]string, 0, len(c.status))
	for n := range c.status {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := c.status[n].get()
		if w := c.warnings[n]; w != "" && s.LastError == "" {
			s.LastError = "skipped: " + w
		}
		out = append(out, s)
	}
	return out
}
