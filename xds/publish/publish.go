// Package publish turns each registry.State into one snapshot per node group and installs it in the
// serving cache. A translation that fails keeps the group's last good snapshot and records why.
//
// A change that only moves servers (the common case: a deploy, a health flap, a Consul registration) takes
// the endpoint path: only the changed upstreams are translated and encoded, everything else is shared
// with the previous snapshot, and streams are sent just the changed endpoint assignments (see
// endpoints.go). Bursts of changes are coalesced (see Run).
package publish

import (
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/groupcache"
	"github.com/dynup/dynup/xds/translate"
)

// GroupStatus is what the admin API shows about one group's snapshot.
type GroupStatus struct {
	Group       translate.Group    `json:"group"`
	Revision    uint64             `json:"revision"`   // state revision the served snapshot was built from
	StateHash   string             `json:"state_hash"` // content hash of that state
	Versions    map[string]string  `json:"versions"`   // xDS version per type URL
	PublishedAt time.Time          `json:"published_at"`
	Warnings    []registry.Warning `json:"warnings,omitempty"`
	// LastError is set while the newest state could not be published for this group; the previous
	// snapshot is still served.
	LastError      string    `json:"last_error,omitempty"`
	FailedRevision uint64    `json:"failed_revision,omitempty"`
	FailedAt       time.Time `json:"failed_at,omitzero"`
}

// Observer learns which versions each group serves at which state revision (rollout tracking).
type Observer interface {
	Published(group string, revision uint64, versions map[string]string)
}

// Coalescing defaults: a state that comes within Quiet of the previous publish waits until no new state
// has come for Quiet, but never longer than MaxDelay, and only the newest is published.
const (
	DefaultQuiet    = 10 * time.Millisecond
	DefaultMaxDelay = 100 * time.Millisecond
)

// Publisher owns the serving cache and keeps every known group's snapshot current.
type Publisher struct {
	opts     translate.Options
	cache    *groupcache.Cache
	log      *slog.Logger
	observer Observer

	quiet, maxDelay time.Duration

	mu     sync.Mutex // serialises publishing so snapshots follow state order
	state  *registry.State
	groups map[string]*group
}

// group is one node group: what the admin API shows, and what its served snapshot was built from.
type group struct {
	status GroupStatus
	built  *built // nil until a snapshot was published
}

// built is a published snapshot with its input, which the endpoint path starts from.
type built struct {
	state    *registry.State
	snap     *groupcache.Snapshot
	warnings []registry.Warning
	left     map[string]bool // upstreams translation left out (they have a warning)
}

// New returns a publisher whose cache serves groups as translate.GroupOf classifies nodes. observer may be nil.
func New(opts translate.Options, log *slog.Logger, observer Observer) *Publisher {
	p := &Publisher{opts: opts, log: log, observer: observer, groups: map[string]*group{},
		quiet: DefaultQuiet, maxDelay: DefaultMaxDelay}
	p.cache = groupcache.New(
		func(n *core.Node) string { return translate.GroupOf(n).String() },
		func(_ string, n *core.Node) { p.addGroup(translate.GroupOf(n)) },
	)
	return p
}

// SetCoalescing changes how Run coalesces bursts (see Run); a zero quiet publishes every state it reads.
// Call it before Run.
func (p *Publisher) SetCoalescing(quiet, maxDelay time.Duration) {
	p.quiet, p.maxDelay = quiet, max(maxDelay, quiet)
}

// Cache is what the xDS server serves from.
func (p *Publisher) Cache() *groupcache.Cache { return p.cache }

// Run publishes the states from states until the channel closes, coalescing bursts.
//
// A state that comes when nothing was published for the quiet time is published at once, so a lone change
// is never delayed. One that comes sooner (a burst: a script writing many upstreams, a Consul catalog
// flapping) waits until no newer state has come for the quiet time, or until the maximum delay, and
// then only the newest state is published: one push for the burst instead of one per write. The store's
// channel keeps only the newest state, so states that come while a publish runs are coalesced as well.
// Time spent waiting is reported apart from the publish (dynup_publish_wait_seconds, _seconds).
func (p *Publisher) Run(states <-chan *registry.State) {
	var last time.Time
	for st := range states {
		if p.quiet > 0 && time.Since(last) < p.quiet {
			var open bool
			st, open = p.settle(states, st)
			if !open {
				p.publishTimed(st)
				return
			}
		}
		p.publishTimed(st)
		last = time.Now()
	}
}

// settle waits for a burst to end and returns its newest state, and false if states closed meanwhile.
func (p *Publisher) settle(states <-chan *registry.State, st *registry.State) (*registry.State, bool) {
	deadline := time.Now().Add(p.maxDelay)
	timer := time.NewTimer(min(p.quiet, time.Until(deadline)))
	defer timer.Stop()
	for {
		select {
		case next, ok := <-states:
			if !ok {
				return st, false
			}
			st = next
			coalesced.Inc()
			left := time.Until(deadline)
			if left <= 0 {
				return st, true
			}
			timer.Reset(min(p.quiet, left))
		case <-timer.C:
			return st, true
		}
	}
}

func (p *Publisher) publishTimed(st *registry.State) {
	if !st.Change.AcceptedAt.IsZero() {
		waitSeconds.Observe(time.Since(st.Change.AcceptedAt).Seconds())
	}
	began := time.Now()
	p.Publish(st)
	publishSeconds.Observe(time.Since(began).Seconds())
}

// Publish rebuilds every known group's snapshot from st. Groups are built in parallel and installed in
// a fixed order.
func (p *Publisher) Publish(st *registry.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = st
	names := slices.Sorted(maps.Keys(p.groups))
	results := make([]buildResult, len(names))
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, name := range names {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			results[i] = p.build(st, p.groups[name])
		}()
	}
	wg.Wait()
	paths := map[string]int{}
	for i, name := range names {
		p.install(p.groups[name], st, results[i])
		paths[results[i].path]++
	}
	p.log.Info("change published", "revision", st.Revision, "source", st.Change.Source,
		"upstreams", st.Change.Upstreams, "version", st.Hash, "groups", len(p.groups), "paths", paths)
}

// addGroup starts serving a group the first time one of its nodes connects.
func (p *Publisher) addGroup(g translate.Group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.groups[g.String()]; ok {
		return
	}
	gr := &group{status: GroupStatus{Group: g}}
	p.groups[g.String()] = gr
	if p.state != nil { // otherwise the first Publish builds it
		p.install(gr, p.state, p.build(p.state, gr))
	}
}

type buildResult struct {
	b    *built
	path string // "endpoints", "full", "unchanged" or "failed"
	err  error
	took time.Duration
}

// build makes a group's snapshot of st: by the endpoint path when it applies, else by a full translation.
func (p *Publisher) build(st *registry.State, gr *group) buildResult {
	began := time.Now()
	if gr.built != nil {
		if b, path, ok := p.buildEndpoints(st, gr.status.Group, gr.built); ok {
			return buildResult{b: b, path: path, took: time.Since(began)}
		}
	}
	b, err := p.buildFull(st, gr.status.Group)
	if err != nil {
		return buildResult{path: "failed", err: err, took: time.Since(began)}
	}
	return buildResult{b: b, path: "full", took: time.Since(began)}
}

func (p *Publisher) install(gr *group, st *registry.State, r buildResult) {
	translationSeconds.WithLabelValues(r.path).Observe(r.took.Seconds())
	publishes.WithLabelValues(r.path).Inc()
	gs := &gr.status
	name := gs.Group.String()
	if r.err != nil {
		publishErrors.WithLabelValues(name).Inc()
		gs.LastError, gs.FailedRevision, gs.FailedAt = r.err.Error(), st.Revision, time.Now()
		p.log.Error("snapshot not published; the last good one is still served",
			"group", name, "revision", st.Revision, "err", r.err)
		return
	}
	gr.built = r.b
	snap := r.b.snap
	gs.Revision, gs.StateHash, gs.Versions, gs.Warnings = st.Revision, st.Hash, snap.Versions(), r.b.warnings
	gs.PublishedAt, gs.LastError, gs.FailedRevision, gs.FailedAt = time.Now(), "", 0, time.Time{}
	// The observer learns of the versions before any stream can be sent them: a NACK of a new version
	// must find the revision it belongs to, however fast the node answers.
	if p.observer != nil {
		p.observer.Published(name, st.Revision, gs.Versions)
	}
	p.cache.SetSnapshot(name, snap)
	for typeURL := range gs.Versions {
		snapshotBytes.WithLabelValues(name, typeURL[strings.LastIndex(typeURL, ".")+1:]).Set(float64(snap.Size(typeURL)))
	}
}

func (p *Publisher) buildFull(st *registry.State, g translate.Group) (*built, error) {
	res, err := translate.Translate(st, g, p.opts)
	if err != nil {
		return nil, err
	}
	snap, err := groupcache.NewSnapshot(map[string][]types.Resource{
		resource.ClusterType:  asResources(res.Clusters),
		resource.EndpointType: asResources(res.Endpoints),
		resource.ListenerType: asResources(res.Listeners),
		resource.RouteType:    asResources(res.Routes),
	})
	if err != nil {
		return nil, err
	}
	return &built{state: st, snap: snap, warnings: res.Warnings, left: leftOut(res.Warnings)}, nil
}

// leftOut returns the upstreams translation left out, which warnings name as "upstream/<name>".
func leftOut(warnings []registry.Warning) map[string]bool {
	out := map[string]bool{}
	for _, w := range warnings {
		if name, ok := strings.CutPrefix(w.Object, "upstream/"); ok {
			out[name] = true
		}
	}
	return out
}

// Status reports every group's snapshot.
func (p *Publisher) Status() []GroupStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]GroupStatus, 0, len(p.groups))
	for _, name := range p.cache.Groups() {
		if gr, ok := p.groups[name]; ok {
			out = append(out, gr.status)
		}
	}
	for name, gr := range p.groups { // groups that never published successfully
		if _, ok := p.cache.Snapshot(name); !ok {
			out = append(out, gr.status)
		}
	}
	return out
}

func asResources[T types.Resource](list []T) []types.Resource {
	out := make([]types.Resource, len(list))
	for i, r := range list {
		out[i] = r
	}
	return out
}
