// Package publish turns each registry.State into one snapshot per node group and installs it in the
// serving cache. A translation that fails keeps the group's last good snapshot and records why.
package publish

import (
	"log/slog"
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

// Publisher owns the serving cache and keeps every known group's snapshot current.
type Publisher struct {
	opts     translate.Options
	cache    *groupcache.Cache
	log      *slog.Logger
	observer Observer

	mu     sync.Mutex // serialises publishing so snapshots follow state order
	state  *registry.State
	groups map[string]*GroupStatus
}

// New returns a publisher whose cache serves groups as translate.GroupOf classifies nodes. observer may be nil.
func New(opts translate.Options, log *slog.Logger, observer Observer) *Publisher {
	p := &Publisher{opts: opts, log: log, observer: observer, groups: map[string]*GroupStatus{}}
	p.cache = groupcache.New(
		func(n *core.Node) string { return translate.GroupOf(n).String() },
		func(_ string, n *core.Node) { p.addGroup(translate.GroupOf(n)) },
	)
	return p
}

// Cache is what the xDS server serves from.
func (p *Publisher) Cache() *groupcache.Cache { return p.cache }

// Run publishes every state from states until the channel closes.
func (p *Publisher) Run(states <-chan *registry.State) {
	for st := range states {
		p.Publish(st)
	}
}

// Publish rebuilds every known group's snapshot from st.
func (p *Publisher) Publish(st *registry.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = st
	for _, gs := range p.groups {
		p.publishGroup(gs)
	}
	p.log.Info("change published", "revision", st.Revision, "source", st.Change.Source,
		"upstreams", st.Change.Upstreams, "version", st.Hash, "groups", len(p.groups))
}

// addGroup starts serving a group the first time one of its nodes connects.
func (p *Publisher) addGroup(g translate.Group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.groups[g.String()]; ok {
		return
	}
	gs := &GroupStatus{Group: g}
	p.groups[g.String()] = gs
	if p.state != nil { // otherwise the first Publish builds it
		p.publishGroup(gs)
	}
}

func (p *Publisher) publishGroup(gs *GroupStatus) {
	st := p.state
	began := time.Now()
	snap, warnings, err := p.build(st, gs.Group)
	translationSeconds.Observe(time.Since(began).Seconds())
	if err != nil {
		publishErrors.WithLabelValues(gs.Group.String()).Inc()
		gs.LastError, gs.FailedRevision, gs.FailedAt = err.Error(), st.Revision, time.Now()
		p.log.Error("snapshot not published; the last good one is still served",
			"group", gs.Group.String(), "revision", st.Revision, "err", err)
		return
	}
	gs.Revision, gs.StateHash, gs.Versions, gs.Warnings = st.Revision, st.Hash, snap.Versions(), warnings
	gs.PublishedAt, gs.LastError, gs.FailedRevision, gs.FailedAt = time.Now(), "", 0, time.Time{}
	p.cache.SetSnapshot(gs.Group.String(), snap)
	for typeURL := range gs.Versions {
		snapshotBytes.WithLabelValues(gs.Group.String(), typeURL[strings.LastIndex(typeURL, ".")+1:]).Set(float64(snap.Size(typeURL)))
	}
	if p.observer != nil {
		p.observer.Published(gs.Group.String(), st.Revision, gs.Versions)
	}
}

func (p *Publisher) build(st *registry.State, g translate.Group) (*groupcache.Snapshot, []registry.Warning, error) {
	res, err := translate.Translate(st, g, p.opts)
	if err != nil {
		return nil, nil, err
	}
	snap, err := groupcache.NewSnapshot(map[string][]types.Resource{
		resource.ClusterType:  asResources(res.Clusters),
		resource.EndpointType: asResources(res.Endpoints),
		resource.ListenerType: asResources(res.Listeners),
		resource.RouteType:    asResources(res.Routes),
	})
	if err != nil {
		return nil, nil, err
	}
	return snap, res.Warnings, nil
}

// Status reports every group's snapshot.
func (p *Publisher) Status() []GroupStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]GroupStatus, 0, len(p.groups))
	for _, name := range p.cache.Groups() {
		if gs, ok := p.groups[name]; ok {
			out = append(out, *gs)
		}
	}
	for name, gs := range p.groups { // groups that never published successfully
		if _, ok := p.cache.Snapshot(name); !ok {
			out = append(out, *gs)
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
