package groupcache

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Cache implements go-control-plane's cache.Cache over per-group snapshots, for state-of-the-world and
// incremental (delta) streams alike.
type Cache struct {
	groupOf func(*core.Node) string
	// missing is called (without locks held) when a node's group has no snapshot yet; the owner is expected
	// to build one and call SetSnapshot. Watches wait until then.
	missing func(group string, node *core.Node)

	// current, when set, is told that a stream holds a type's newest version without being sent it (see
	// OnCurrent).
	current func(req any, typeURL, version string)

	mu     sync.Mutex
	groups map[string]*group
	nextID int64
}

// group is one node group: its snapshot and the watches of its streams, by type in typeOrder.
type group struct {
	snap    *Snapshot
	watches [4 + 1]map[int64]*watch // len(typeOrder)+1: other types share the last
}

// watch is one stream's open request for one type: state of the world (req, ch) or delta (dreq, dch).
type watch struct {
	id      int64
	typeURL string
	sub     cache.Subscription

	req  *cache.Request
	ch   chan cache.Response
	dreq *cache.DeltaRequest
	dch  chan cache.DeltaResponse
}

var _ cache.Cache = (*Cache)(nil)

// New returns a cache that groups nodes with groupOf and asks missing for snapshots of new groups.
func New(groupOf func(*core.Node) string, missing func(group string, node *core.Node)) *Cache {
	return &Cache{groupOf: groupOf, missing: missing, groups: map[string]*group{}}
}

// OnCurrent sets f to be told when a stream comes to hold a type's newest version without being sent
// anything: it subscribes to named resources (as proxyless gRPC clients do), the ones it named did not
// change, and it had accepted what it was last sent. req is the stream's latest request (a
// *cache.Request or *cache.DeltaRequest), which the server's callbacks saw too. Without this, rollout
// tracking would wait forever for such a stream to ACK a version it is never sent. f is called with the
// cache's lock held and must not call back into the cache. Call OnCurrent before serving.
func (c *Cache) OnCurrent(f func(req any, typeURL, version string)) { c.current = f }

// Snapshot returns the group's current snapshot.
func (c *Cache) Snapshot(name string) (*Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[name]; g != nil && g.snap != nil {
		return g.snap, true
	}
	return nil, false
}

// Groups lists the groups that have a snapshot.
func (c *Cache) Groups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.groups))
	for name, g := range c.groups {
		if g.snap != nil {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// group returns the named group, creating it. Called with c.mu held.
func (c *Cache) group(name string) *group {
	g := c.groups[name]
	if g == nil {
		g = &group{}
		c.groups[name] = g
	}
	return g
}

// SetSnapshot installs a group's snapshot and answers the watches it changes, clusters first.
//
// A watch that was up to date with the previous snapshot is only looked at again when a resource it wants
// changed, so an endpoint change costs one map lookup for each stream that does not want that endpoint.
func (c *Cache) SetSnapshot(name string, s *Snapshot) {
	began := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.group(name)
	old := g.snap
	g.snap = s
	changed := changeSets(s.changes(old))
	// The link to the snapshot s was derived from only serves to find what changed, just done. Kept, it
	// would hold every earlier snapshot of the group in memory: one per endpoint change, for ever.
	s.base, s.replaced = nil, nil
	defer func() { fanoutSeconds.Observe(time.Since(began).Seconds()) }()
	// Every parked watch was found up to date with the group's snapshot, old (watch parks one only then,
	// and this loop answers or keeps each), so only what changed since old needs a look.
	if old != nil && len(changed) == 0 {
		return
	}
	for _, ws := range g.watches {
		for id, w := range ws {
			answered := false
			if old != nil {
				cs := changed[w.typeURL]
				if !w.affectedBy(cs) {
					if cs != nil {
						c.tellCurrent(w, s)
					}
					continue
				}
				answered = w.answerChanges(s, cs, &c.mu)
			} else {
				answered = w.answer(s)
			}
			if answered {
				delete(ws, id)
				fanoutResponses.WithLabelValues(shortType(w.typeURL)).Inc()
			}
		}
	}
}

// CreateWatch answers at once when the group's snapshot has something the stream has not seen, and
// otherwise parks the request until SetSnapshot changes that.
func (c *Cache) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	return c.watch(req.GetNode(), &watch{typeURL: req.GetTypeUrl(), sub: sub, req: req, ch: ch})
}

// CreateDeltaWatch is CreateWatch for incremental xDS: the stream gets the resources that changed since
// what it was last sent, and the names of those that went away.
func (c *Cache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	return c.watch(req.GetNode(), &watch{typeURL: req.GetTypeUrl(), sub: sub, dreq: req, dch: ch})
}

func (c *Cache) watch(node *core.Node, w *watch) (func(), error) {
	name := c.groupOf(node)
	c.mu.Lock()
	g := c.group(name)
	for {
		s := g.snap
		if s == nil {
			break
		}
		// Building a response can take a while on a large set; other streams need not wait for it.
		c.mu.Unlock()
		answered := w.answer(s)
		c.mu.Lock()
		if answered {
			c.mu.Unlock()
			return func() {}, nil
		}
		if g.snap == s { // otherwise a new snapshot came meanwhile: look again
			c.tellCurrent(w, s)
			break
		}
	}
	c.nextID++
	w.id = c.nextID
	rank := typeRank(w.typeURL)
	if g.watches[rank] == nil {
		g.watches[rank] = map[int64]*watch{}
	}
	g.watches[rank][w.id] = w
	missing := g.snap == nil
	c.mu.Unlock()
	if missing && c.missing != nil {
		c.missing(name, node)
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(g.watches[rank], w.id)
	}, nil
}

// tellCurrent tells the current func that a watch with nothing to send holds s's version of its type,
// unless that is already the version the stream answered, or its request rejected what it was sent (it
// holds an older state then, not s's). Called with c.mu held.
func (c *Cache) tellCurrent(w *watch, s *Snapshot) {
	if c.current == nil {
		return
	}
	version := s.Version(w.typeURL)
	if w.dreq != nil {
		if w.dreq.GetErrorDetail() == nil && w.dreq.GetResponseNonce() != "" {
			c.current(w.dreq, w.typeURL, version)
		}
		return
	}
	if w.req.GetErrorDetail() == nil && w.req.GetResponseNonce() != "" && w.req.GetVersionInfo() != version {
		c.current(w.req, w.typeURL, version)
	}
}

// answer sends the response s calls for, if any, and reports whether it did. The server gives each stream
// room for one response per type, so the send does not block.
func (w *watch) answer(s *Snapshot) bool {
	if w.dch != nil {
		if r := respondDelta(s, w.dreq, w.sub); r != nil {
			w.dch <- r
			return true
		}
		return false
	}
	if r := respond(s, w.req, w.sub); r != nil {
		w.ch <- r
		return true
	}
	return false
}

// answerChanges is answer for a watch that was up to date with the snapshot s replaced, when only the
// resources in cs differ: the response is built from those alone, not by comparing everything again.
//
// lock is the cache's, held by the caller: a delta response's edits are made under it (see returnedEdits).
func (w *watch) answerChanges(s *Snapshot, cs *changeSet, lock sync.Locker) bool {
	if w.dch != nil {
		if r := respondDeltaChanges(s, w.dreq, w.sub, cs, lock); r != nil {
			w.dch <- r
			return true
		}
		return false
	}
	if cache.ResourceRequiresFullStateInSotw(w.typeURL) { // sent whole anyway
		return w.answer(s)
	}
	if r := respondChanges(s, w.req, w.sub, cs); r != nil {
		w.ch <- r
		return true
	}
	return false
}

// changeSet is the names of one type that changed, sorted, with a set for quick lookups when there are many.
type changeSet struct {
	names []string
	set   map[string]struct{}
	// shared is the response every stream of the group that wants all of these names gets (every
	// wildcard stream, and every Envoy, whose endpoint subscription names every cluster), made for the
	// first and shared by the rest (SetSnapshot answers them all under the cache's lock): with 10,000
	// streams, encoding the same response for each was 6% of dynup's CPU per change (profiled).
	shared *sharedChange
	// sharedDelta is the same for incremental streams (deltawire.go).
	sharedDelta *sharedDeltaChange
}

// sharedChange is what a stream that was up to date and wants every changed name is sent for a change of a
// type not sent whole: the changed resources that exist (a state-of-the-world response does not say which
// went away), in name order, encoded once, and the edits to its returned-resources map. All of it is
// read-only.
type sharedChange struct {
	out   []*anypb.Any
	wire  []byte
	edits []returnedEdit
}

// forAll returns the change's sharedChange, made on first use. Called with the cache's lock held.
func (cs *changeSet) forAll(set *typeSet) *sharedChange {
	if cs.shared != nil {
		return cs.shared
	}
	w := &sharedChange{}
	for _, n := range cs.names {
		e := set.get(n)
		if e == nil { // gone: just forgotten
			w.edits = append(w.edits, returnedEdit{name: n, remove: true})
			continue
		}
		w.edits = append(w.edits, returnedEdit{name: n, version: e.version})
		w.out = append(w.out, e.any)
	}
	w.edits = append(w.edits, returnedEdit{name: versionKey, version: set.version})
	w.wire = wireOf(w.out)
	cs.shared = w
	return w
}

func changeSets(byType map[string][]string) map[string]*changeSet {
	out := make(map[string]*changeSet, len(byType))
	for t, names := range byType {
		if len(names) == 0 {
			continue
		}
		names = slices.Clone(names)
		slices.Sort(names)
		cs := &changeSet{names: names}
		if len(names) > 32 {
			cs.set = make(map[string]struct{}, len(names))
			for _, n := range names {
				cs.set[n] = struct{}{}
			}
		}
		out[t] = cs
	}
	return out
}

// affectedBy reports whether a change of these resources may give the watch something to send.
func (w *watch) affectedBy(cs *changeSet) bool {
	if cs == nil {
		return false
	}
	if w.sub.IsWildcard() {
		return true
	}
	subscribed := w.sub.SubscribedResources()
	if cs.set != nil && len(subscribed) < len(cs.names) {
		for n := range subscribed {
			if _, ok := cs.set[n]; ok {
				return true
			}
		}
		return false
	}
	for _, n := range cs.names {
		if _, ok := subscribed[n]; ok {
			return true
		}
	}
	return false
}

// Fetch is for REST polling, which dynup does not serve.
func (c *Cache) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("dynup serves xDS over gRPC streams only")
}
