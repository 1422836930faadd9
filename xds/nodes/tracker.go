// Package nodes tracks every connected xDS node: who it is, which versions it was sent, which it ACKed,
// and the last NACK with its error, so a rejected config is never invisible.
package nodes

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/translate"
)

// Node is one connected stream's node, as the admin API shows it.
type Node struct {
	ID             string                `json:"id"`
	Cluster        string                `json:"cluster,omitempty"` // the node's own cluster (fleet) name
	Group          translate.Group       `json:"group"`
	UserAgent      string                `json:"user_agent"`
	Stream         int64                 `json:"stream"`
	ConnectedSince time.Time             `json:"connected_since"`
	Types          map[string]*TypeState `json:"types"` // by type URL
}

// TypeState is one resource type on one stream.
type TypeState struct {
	SentVersion  string    `json:"sent_version"`
	SentAt       time.Time `json:"sent_at,omitzero"`
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	Sends        int       `json:"sends"`
	LastNack     *Nack     `json:"last_nack,omitempty"`
	nonce        string
}

// Nack is a rejected response: the version, the node's error detail, when, and the changes that made the
// rejected version (the likely culprits).
type Nack struct {
	Version string            `json:"version"`
	Detail  string            `json:"detail"`
	At      time.Time         `json:"at"`
	Changes []registry.Change `json:"changes,omitempty"`
}

// Rollout is told about streams, sends, ACKs and NACKs, to follow changes across the fleet.
type Rollout interface {
	Opened(id int64, group string)
	Closed(id int64)
	Sent(id int64, typeURL string)
	Acked(id int64, typeURL, version string, at time.Time) []registry.Change
	Nacked(id int64, typeURL, version, detail string) []registry.Change
}

// Tracker implements go-control-plane's server callbacks.
type Tracker struct {
	serverv3.CallbackFuncs // the callbacks dynup has no use for

	rollout Rollout
	log     *slog.Logger

	mu      sync.Mutex
	streams map[int64]*Node
	changed chan struct{} // closed and replaced on every ACK or NACK, so waiters need no polling
}

// NewTracker returns an empty tracker reporting to rollout (which may be nil).
func NewTracker(rollout Rollout, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{rollout: rollout, log: log, streams: map[int64]*Node{}, changed: make(chan struct{})}
}

func (t *Tracker) OnStreamOpen(_ context.Context, id int64, _ string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[id] = &Node{Stream: id, ConnectedSince: time.Now(), Types: map[string]*TypeState{}}
	return nil
}

func (t *Tracker) OnStreamClosed(id int64, _ *core.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.streams[id]; n != nil && n.ID != "" {
		streamsOpen.WithLabelValues(n.Group.String()).Dec()
	}
	delete(t.streams, id)
	if t.rollout != nil {
		t.rollout.Closed(id)
	}
	t.notify()
}

func (t *Tracker) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.streams[id]
	if n == nil {
		return nil
	}
	if node := req.GetNode(); node != nil && n.ID == "" {
		n.ID, n.Cluster, n.Group = node.GetId(), node.GetCluster(), translate.GroupOf(node)
		n.UserAgent = node.GetUserAgentName()
		if v := node.GetUserAgentVersion(); v != "" {
			n.UserAgent += "/" + v
		}
		streamsOpen.WithLabelValues(n.Group.String()).Inc()
		if t.rollout != nil {
			t.rollout.Opened(id, n.Group.String())
		}
	}
	ts := n.Types[req.TypeUrl]
	if ts == nil || req.ResponseNonce == "" || req.ResponseNonce != ts.nonce {
		return nil // an initial request, or one about an older response
	}
	now := time.Now()
	if req.ErrorDetail != nil {
		nack := &Nack{Version: ts.SentVersion, Detail: req.ErrorDetail.GetMessage(), At: now}
		if t.rollout != nil {
			nack.Changes = t.rollout.Nacked(id, req.TypeUrl, ts.SentVersion, nack.Detail)
		}
		ts.LastNack = nack
		nacks.WithLabelValues(shortType(req.TypeUrl)).Inc()
		t.log.Warn("NACK", "node", n.ID, "group", n.Group.String(), "type", shortType(req.TypeUrl),
			"version", nack.Version, "detail", nack.Detail, "changes", revisions(nack.Changes))
	} else {
		ts.AckedVersion, ts.AckedAt = req.VersionInfo, now
		acks.WithLabelValues(shortType(req.TypeUrl)).Inc()
		if t.rollout != nil {
			t.rollout.Acked(id, req.TypeUrl, req.VersionInfo, now)
		}
	}
	t.notify()
	return nil
}

func (t *Tracker) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.streams[id]
	if n == nil {
		return
	}
	ts := n.Types[req.TypeUrl]
	if ts == nil {
		ts = &TypeState{}
		n.Types[req.TypeUrl] = ts
	}
	ts.SentVersion, ts.SentAt, ts.nonce = resp.VersionInfo, time.Now(), resp.Nonce
	ts.Sends++
	pushes.WithLabelValues(shortType(req.TypeUrl)).Inc()
	if t.rollout != nil {
		t.rollout.Sent(id, req.TypeUrl)
	}
}

func (t *Tracker) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// Nodes returns a copy of every tracked stream's node, ordered by id then stream.
func (t *Tracker) Nodes() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Node, 0, len(t.streams))
	for _, n := range t.streams {
		c := *n
		c.Types = make(map[string]*TypeState, len(n.Types))
		for k, v := range n.Types {
			cp := *v
			c.Types[k] = &cp
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Stream < out[j].Stream
	})
	return out
}

// Changed returns a channel closed at the next ACK, NACK or disconnect.
func (t *Tracker) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}
