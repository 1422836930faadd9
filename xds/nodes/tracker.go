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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	Protocol       string                `json:"protocol"` // "sotw" (state of the world) or "delta" (incremental)
	ConnectedSince time.Time             `json:"connected_since"`
	Types          map[string]*TypeState `json:"types"` // by type URL
}

// TypeState is one resource type on one stream.
type TypeState struct {
	SentVersion string    `json:"sent_version"`
	SentAt      time.Time `json:"sent_at,omitzero"`
	// AckedVersion is the newest version the node accepted, or holds: a node that subscribes to named
	// resources (a proxyless gRPC client) is not sent a version in which none of them changed, and holds it
	// all the same.
	AckedVersion string    `json:"acked_version,omitempty"`
	AckedAt      time.Time `json:"acked_at,omitzero"`
	Sends        int       `json:"sends"`
	LastNack     *Nack     `json:"last_nack,omitempty"`
	nonce        string
	// request is the stream's latest request of this type, which the cache may name in Current. (After a
	// request with a stale nonce, which the server ignores, the cache's watch holds the one before; the
	// next ACK replaces that watch, so keeping one request per type, not two, loses nothing lasting.)
	request any
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
	// byRequest finds the stream of a request the cache names (see Current).
	byRequest map[any]int64
	changed   chan struct{} // closed at the next ACK, NACK or disconnect when someone waits (nil when nobody does)
}

// NewTracker returns an empty tracker reporting to rollout (which may be nil).
func NewTracker(rollout Rollout, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{rollout: rollout, log: log, streams: map[int64]*Node{}, byRequest: map[any]int64{}}
}

func (t *Tracker) OnStreamOpen(_ context.Context, id int64, _ string) error {
	t.open(id, "sotw")
	return nil
}

func (t *Tracker) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	t.open(deltaKey(id), "delta")
	return nil
}

func (t *Tracker) open(id int64, protocol string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[id] = &Node{Stream: max(id, -id), Protocol: protocol, ConnectedSince: time.Now(), Types: map[string]*TypeState{}}
}

func (t *Tracker) OnStreamClosed(id int64, _ *core.Node)      { t.closed(id) }
func (t *Tracker) OnDeltaStreamClosed(id int64, _ *core.Node) { t.closed(deltaKey(id)) }

// deltaKey is the key of incremental stream id. go-control-plane numbers state-of-the-world and
// incremental streams separately, each from 1, so the same number can name one stream of each.
func deltaKey(id int64) int64 { return -id }

func (t *Tracker) closed(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.streams[id]
	if n != nil && n.ID != "" {
		streamsOpen.WithLabelValues(n.Group.String()).Dec()
	}
	if n != nil {
		for _, ts := range n.Types {
			delete(t.byRequest, ts.request)
		}
	}
	delete(t.streams, id)
	if t.rollout != nil {
		t.rollout.Closed(id)
	}
	t.notify()
}

func (t *Tracker) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	return t.request(id, req, req.GetNode(), req.TypeUrl, req.ResponseNonce, req.VersionInfo, req.ErrorDetail.GetMessage(), req.ErrorDetail != nil)
}

// OnStreamDeltaRequest is OnStreamRequest for incremental streams, whose ACKs carry no version: the version
// ACKed is the one sent with the nonce.
func (t *Tracker) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	return t.request(deltaKey(id), req, req.GetNode(), req.TypeUrl, req.ResponseNonce, "", req.ErrorDetail.GetMessage(), req.ErrorDetail != nil)
}

// MaxTypesPerStream bounds the resource types one stream may ask for. The ADS servers queue a stream's
// responses in a channel with room for this many (dynup's state-of-the-world loop sizes its queue with
// it; go-control-plane's delta server has twice as much), at most one per type; a stream asking for more
// types could fill it, and the cache, which sends on it while holding its lock, would wait for a stream
// that waits for the lock. Envoy asks for a handful of types, gRPC clients for four.
const MaxTypesPerStream = 10

// request records a request: the node's identity on the first, and an ACK or NACK when it answers the
// latest response of its type. version is what an ACK names ("" to take the version sent).
func (t *Tracker) request(id int64, req any, node *core.Node, typeURL, nonce, version, detail string, rejected bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.streams[id]
	if n == nil {
		return nil
	}
	if n.Types[typeURL] == nil && len(n.Types) >= MaxTypesPerStream {
		return status.Errorf(codes.InvalidArgument, "a stream may ask for at most %d resource types; %s would be one more", MaxTypesPerStream, typeURL)
	}
	t.remember(n, id, typeURL, req)
	if node != nil && n.ID == "" {
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
	ts := n.Types[typeURL]
	if ts == nil || nonce == "" || nonce != ts.nonce {
		return nil // an initial request, or one about an older response
	}
	now := time.Now()
	c := countersFor(typeURL)
	if rejected {
		nack := &Nack{Version: ts.SentVersion, Detail: detail, At: now}
		if t.rollout != nil {
			nack.Changes = t.rollout.Nacked(id, typeURL, ts.SentVersion, nack.Detail)
		}
		ts.LastNack = nack
		c.nacks.Inc()
		t.log.Warn("NACK", "node", n.ID, "group", n.Group.String(), "type", shortType(typeURL),
			"version", nack.Version, "detail", nack.Detail, "changes", revisions(nack.Changes))
	} else {
		if version == "" {
			version = ts.SentVersion
		}
		ts.AckedVersion, ts.AckedAt = version, now
		c.acks.Inc()
		if t.rollout != nil {
			t.rollout.Acked(id, typeURL, version, now)
		}
	}
	t.notify()
	return nil
}

// remember keeps req as the stream's latest request of its type. Called with t.mu held.
func (t *Tracker) remember(n *Node, key int64, typeURL string, req any) {
	ts := n.Types[typeURL]
	if ts == nil {
		ts = &TypeState{}
		n.Types[typeURL] = ts
	}
	delete(t.byRequest, ts.request)
	ts.request = req
	t.byRequest[req] = key
}

// Current is the serving cache's report that the stream of req holds typeURL's newest version without being
// sent it (groupcache.Cache.OnCurrent): rollout tracking counts it as having ACKed that version.
func (t *Tracker) Current(req any, typeURL, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.byRequest[req]
	if !ok {
		return
	}
	now := time.Now()
	// The node holds this version's content of everything it asked for, so it is shown (and counted) as
	// on this version, like a node that was sent it and ACKed: otherwise a proxyless client would look out
	// of date after every change to an upstream it does not use.
	if n := t.streams[id]; n != nil && n.Types[typeURL] != nil {
		ts := n.Types[typeURL]
		ts.SentVersion, ts.AckedVersion, ts.AckedAt = version, version, now // nothing of it is outstanding
	}
	if t.rollout != nil {
		t.rollout.Acked(id, typeURL, version, now)
	}
	t.notify()
}

func (t *Tracker) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	t.response(id, req.TypeUrl, resp.VersionInfo, resp.Nonce)
}

func (t *Tracker) OnStreamDeltaResponse(id int64, req *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	t.response(deltaKey(id), req.TypeUrl, resp.SystemVersionInfo, resp.Nonce)
}

func (t *Tracker) response(id int64, typeURL, version, nonce string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.streams[id]
	if n == nil {
		return
	}
	ts := n.Types[typeURL]
	if ts == nil {
		ts = &TypeState{}
		n.Types[typeURL] = ts
	}
	ts.SentVersion, ts.SentAt, ts.nonce = version, time.Now(), nonce
	ts.Sends++
	countersFor(typeURL).pushes.Inc()
	if t.rollout != nil {
		t.rollout.Sent(id, typeURL)
	}
}

// notify wakes whoever waits on Changed. The channel is made only when someone asks for it: a fleet's
// ACKs come thousands a second, and nobody is waiting for almost all of them.
func (t *Tracker) notify() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
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
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	return t.changed
}
