package groupcache

import (
	"context"
	"errors"
	"sort"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Cache implements go-control-plane's cache.Cache over per-group snapshots.
type Cache struct {
	groupOf func(*core.Node) string
	// missing is called (without locks held) when a node's group has no snapshot yet; the owner is expected
	// to build one and call SetSnapshot. Watches wait until then.
	missing func(group string, node *core.Node)

	mu        sync.Mutex
	snapshots map[string]*Snapshot
	watches   map[string]map[int64]*watch // by group
	nextID    int64
}

type watch struct {
	id  int64
	req *cache.Request
	sub cache.Subscription
	ch  chan cache.Response
}

var _ cache.Cache = (*Cache)(nil)

// New returns a cache that groups nodes with groupOf and asks missing for snapshots of new groups.
func New(groupOf func(*core.Node) string, missing func(group string, node *core.Node)) *Cache {
	return &Cache{groupOf: groupOf, missing: missing, snapshots: map[string]*Snapshot{}, watches: map[string]map[int64]*watch{}}
}

// Snapshot returns the group's current snapshot.
func (c *Cache) Snapshot(group string) (*Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.snapshots[group]
	return s, ok
}

// Groups lists the groups that have a snapshot.
func (c *Cache) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.snapshots))
	for g := range c.snapshots {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// SetSnapshot installs a group's snapshot and answers the watches it changes, clusters first.
func (c *Cache) SetSnapshot(group string, s *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snapshots[group] = s
	ws := make([]*watch, 0, len(c.watches[group]))
	for _, w := range c.watches[group] {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool {
		ri, rj := typeRank(ws[i].req.TypeUrl), typeRank(ws[j].req.TypeUrl)
		if ri != rj {
			return ri < rj
		}
		return ws[i].id < ws[j].id
	})
	for _, w := range ws {
		if resp := respond(s, w.req, w.sub); resp != nil {
			w.ch <- resp // the server gives each stream room for one response per type
			delete(c.watches[group], w.id)
		}
	}
}

// CreateWatch answers at once when the group's snapshot has something the stream has not seen, and
// otherwise parks the request until SetSnapshot changes that.
func (c *Cache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	group := c.groupOf(req.GetNode())
	c.mu.Lock()
	s, ok := c.snapshots[group]
	if ok {
		if resp := respond(s, req, sub); resp != nil {
			c.mu.Unlock()
			ch <- resp
			return func() {}, nil
		}
	}
	c.nextID++
	w := &watch{id: c.nextID, req: req, sub: sub, ch: ch}
	if c.watches[group] == nil {
		c.watches[group] = map[int64]*watch{}
	}
	c.watches[group][w.id] = w
	c.mu.Unlock()
	if !ok && c.missing != nil {
		c.missing(group, req.GetNode())
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.watches[group], w.id)
	}, nil
}

// CreateDeltaWatch is not served yet: incremental xDS comes with the performance work.
func (c *Cache) CreateDeltaWatch(*cache.DeltaRequest, cache.Subscription, chan cache.DeltaResponse) (func(), error) {
	return nil, errors.New("dynup serves state-of-the-world ADS; incremental (delta) xDS is not enabled")
}

// Fetch is for REST polling, which dynup does not serve.
func (c *Cache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("dynup serves xDS over gRPC streams only")
}

// respond builds the response a request should get now, or nil when the stream already has this content.
//
// The stream is answered when it has never had a response of this type (no nonce yet), or when the
// resources it wants differ from those it was last sent: a version changed, one appeared or went away.
// Comparing with what was sent, not with what the node ACKed, is what stops a NACKed response from being
// sent again and again: after a NACK the same content is not resent until the state changes.
func respond(s *Snapshot, req *cache.Request, sub cache.Subscription) cache.Response {
	set := s.types[req.TypeUrl]
	if set == nil {
		set = &typeSet{}
	}
	wanted := map[string]string{}
	if sub.IsWildcard() {
		for _, n := range set.names {
			wanted[n] = set.items[n].version
		}
	} else {
		for n := range sub.SubscribedResources() {
			if e, ok := set.items[n]; ok {
				wanted[n] = e.version
			}
		}
	}
	if req.ResponseNonce != "" && sameVersions(wanted, sub.ReturnedResources()) {
		return nil
	}
	names := make([]string, 0, len(wanted))
	for n := range wanted {
		names = append(names, n)
	}
	sort.Strings(names)
	out := &discovery.DiscoveryResponse{VersionInfo: set.version, TypeUrl: req.TypeUrl, Resources: make([]*anypb.Any, len(names))}
	for i, n := range names {
		out.Resources[i] = set.items[n].any
	}
	return &response{req: req, resp: out, returned: wanted}
}

func sameVersions(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// response is a ready-made DiscoveryResponse. Its resources are shared with every other stream of the
// group; only the envelope (which the server stamps with a nonce) is per stream.
type response struct {
	req      *cache.Request
	resp     *discovery.DiscoveryResponse
	returned map[string]string
}

func (r *response) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) { return r.resp, nil }
func (r *response) GetRequest() *discovery.DiscoveryRequest                     { return r.req }
func (r *response) GetVersion() (string, error)                                 { return r.resp.VersionInfo, nil }
func (r *response) GetResponseVersion() string                                  { return r.resp.VersionInfo }
func (r *response) GetReturnedResources() map[string]string                     { return r.returned }
func (r *response) GetContext() context.Context                                 { return context.Background() }
