// Package feedback is dynup's fleet-wide failure tracker: every node's view of a server's failures counts
// together. Envoys report per-endpoint request and error counts over LRS (lrs.go); anything else can report
// one outcome at a time through the admin API (POST /feedback, checkups' feedback_status). A server that
// fails max_fails times within fail_timeout, across all reporters, is UNHEALTHY in EDS for every node for
// fail_timeout, then returns.
package feedback

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/healthcheck"
)

// Source is the name the tracker's verdicts carry in the store (Server.Health.Source).
const Source = "feedback"

// Store is what the tracker needs of registry.Store: the servers and their limits, and where verdicts go.
type Store interface {
	Subscribe() (<-chan *registry.State, func())
	SetHealth(source string, unhealthy map[registry.ServerKey]registry.Verdict) *registry.State
}

// Report is what one reporter saw of one server since its last report.
type Report struct {
	Upstream  string
	Host      string
	Port      int
	Reporter  string // the node that saw it ("lrs:<node id>", "http:<node or client address>")
	Failures  uint64
	Successes uint64
}

// UnknownError means a report names an upstream or a server the state does not have.
type UnknownError struct {
	Field string // "upstream" or "host"
	Msg   string
}

func (e *UnknownError) Error() string { return e.Msg }

// Tracker applies checkups' window rule per server with the server's own max_fails and fail_timeout.
type Tracker struct {
	store Store
	log   *slog.Logger
	now   func() time.Time

	mu sync.Mutex
	// upstreams holds each upstream's servers as last synced, so that a state that changes a few
	// upstreams is synced for those alone: going over 100,000 servers took ~15 ms on every change.
	upstreams map[string][]registry.ServerKey
	synced    *registry.State // the state last synced
	servers   map[registry.ServerKey]*tracked
	out       map[registry.ServerKey]registry.Verdict
	reports   uint64
	last      time.Time
	wake      chan struct{} // a new time out was set: the expiry timer must look again

	reportMu sync.Mutex // serialises SetHealth calls so the last call carries the newest set
}

type tracked struct {
	passive healthcheck.Passive
	down    bool
	w       window
}

// New returns a tracker for store; Run starts following it.
func New(store Store, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{store: store, log: log, now: time.Now, upstreams: map[string][]registry.ServerKey{},
		servers: map[registry.ServerKey]*tracked{}, out: map[registry.ServerKey]registry.Verdict{}, wake: make(chan struct{}, 1)}
}

// Run follows the store's servers and brings servers back when their time out is over, until ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	states, unsubscribe := t.store.Subscribe()
	defer unsubscribe()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := t.expire()
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return
		case st := <-states:
			t.sync(st)
		case <-timer.C:
		case <-t.wake:
		}
	}
}

// Report counts one report. It returns the server's status after it, or an *UnknownError.
func (t *Tracker) Report(r Report) (ServerStatus, error) {
	k := registry.ServerKey{Upstream: r.Upstream, Host: r.Host, Port: r.Port}
	t.mu.Lock()
	s, ok := t.servers[k]
	if !ok {
		_, known := t.upstreams[r.Upstream]
		t.mu.Unlock()
		if !known {
			return ServerStatus{}, &UnknownError{Field: "upstream", Msg: fmt.Sprintf("upstream %s not found", r.Upstream)}
		}
		return ServerStatus{}, &UnknownError{Field: "host", Msg: fmt.Sprintf("upstream %s has no server %s", r.Upstream, net.JoinHostPort(r.Host, strconv.Itoa(r.Port)))}
	}
	now := t.now()
	t.reports++
	t.last = now
	tookOut := false
	if !s.down {
		tookOut = s.w.add(now, s.passive, r.Reporter, r.Failures, r.Successes)
	}
	if tookOut {
		t.out[k] = registry.Verdict{Reason: s.w.reason, Since: now}
	}
	st := statusOf(s)
	t.mu.Unlock()
	failuresReported.Add(float64(r.Failures))
	if tookOut {
		serversTakenOut.Inc()
		t.log.Warn("server taken out", "source", "feedback", "server", k.String(), "reason", s.w.reason, "until", st.OutUntil)
		select {
		case t.wake <- struct{}{}:
		default:
		}
		t.report()
	}
	return st, nil
}

// sync takes the servers and their limits from st. Removed servers lose their accounting; a server whose
// accounting was turned off (max_fails 0) or that was marked down comes back at once.
//
// A state that directly follows the last one synced names every upstream it changed (a store test checks
// that), and only those are synced; after a skipped state (the subscription keeps only the newest) every
// upstream is.
func (t *Tracker) sync(st *registry.State) {
	t.mu.Lock()
	changed := false
	if prev := t.synced; prev != nil && st.Revision == prev.Revision+1 {
		for _, name := range st.Change.Upstreams {
			changed = t.syncUpstream(st, name) || changed
		}
	} else {
		for i := range st.Upstreams {
			changed = t.syncUpstream(st, st.Upstreams[i].Name) || changed
		}
		for name := range t.upstreams {
			if _, ok := st.Upstream(name); !ok {
				changed = t.syncUpstream(st, name) || changed
			}
		}
	}
	t.synced = st
	t.mu.Unlock()
	if changed {
		t.report()
	}
}

// syncUpstream takes one upstream's servers from st and says whether a server came back.
func (t *Tracker) syncUpstream(st *registry.State, name string) bool {
	changed := false
	old := t.upstreams[name]
	u, ok := st.Upstream(name)
	if !ok {
		delete(t.upstreams, name)
		for _, k := range old {
			changed = t.drop(k) || changed
		}
		return changed
	}
	keys := make([]registry.ServerKey, 0, len(u.Servers))
	for j := range u.Servers {
		srv := &u.Servers[j]
		k := registry.ServerKey{Upstream: u.Name, Host: srv.Host, Port: srv.Port}
		keys = append(keys, k)
		s := t.servers[k]
		if s == nil {
			s = &tracked{}
			t.servers[k] = s
		}
		s.passive, s.down = healthcheck.ServerPassive(u, srv), srv.Down
		if (s.passive.Off() || s.down) && s.w.release() {
			delete(t.out, k)
			changed = true
		}
	}
	t.upstreams[name] = keys
	if len(old) == 0 {
		return changed
	}
	kept := make(map[registry.ServerKey]bool, len(keys))
	for _, k := range keys {
		kept[k] = true
	}
	for _, k := range old {
		if !kept[k] {
			changed = t.drop(k) || changed
		}
	}
	return changed
}

// drop forgets a server that is gone and says whether it was out.
func (t *Tracker) drop(k registry.ServerKey) bool {
	delete(t.servers, k)
	if _, ok := t.out[k]; ok {
		delete(t.out, k)
		return true
	}
	return false
}

// expire brings back the servers whose time out is over and returns when the next one is due (zero: none).
func (t *Tracker) expire() time.Time {
	t.mu.Lock()
	now := t.now()
	var next time.Time
	var back []registry.ServerKey
	for k := range t.out { // only a server that is out has a time out to end
		s := t.servers[k]
		if s.w.expire(now) {
			delete(t.out, k)
			back = append(back, k)
			continue
		}
		if s.w.out && (next.IsZero() || s.w.outUntil.Before(next)) {
			next = s.w.outUntil
		}
	}
	t.mu.Unlock()
	for _, k := range back {
		t.log.Info("server back after its time out", "source", "feedback", "server", k.String())
	}
	if len(back) > 0 {
		t.report()
	}
	return next
}

// report gives the store the current set of servers that are out.
func (t *Tracker) report() {
	t.reportMu.Lock()
	defer t.reportMu.Unlock()
	t.mu.Lock()
	set := maps.Clone(t.out)
	t.mu.Unlock()
	serversOut.Set(float64(len(set)))
	t.store.SetHealth(Source, set)
}
