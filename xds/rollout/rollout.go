// Package rollout answers "has my change reached the fleet?": for every accepted change, which connected
// nodes have ACKed versions that contain it, which rejected it, which are pending, and how long it took.
//
// A node contains change R when, for every type it was sent, the version it ACKed was its group's current
// version at some revision ≥ R. The publisher reports, per group, which versions were current at which
// revisions; the node tracker reports ACKs, NACKs and streams.
package rollout

import (
	"context"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/dynup/dynup/registry"
)

// ChangeLog is where changes come from (the store's history).
type ChangeLog interface {
	Changes(from, to uint64) []registry.Change
}

// span is the range of revisions during which a version was a group's current version of a type.
type span struct{ first, last uint64 }

type stream struct {
	group  string
	opened time.Time
	acked  map[string]string // type URL → ACKed version
	sent   map[string]bool   // types the node was sent
	// The stream contains every change up to upTo. runs say when each was reached: the changes after the
	// previous run's revision, up to a run's revision, were reached at its time. A stream reaches changes
	// in order, so this is a few entries where a map of every change would be hundreds per stream.
	upTo   uint64
	runs   []run
	nacked map[uint64]string // change id → NACK detail
}

type run struct {
	to uint64
	at time.Time
}

// reachedAt returns when the stream came to contain change rev.
func (s *stream) reachedAt(rev uint64) (time.Time, bool) {
	if rev > s.upTo {
		return time.Time{}, false
	}
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].to >= rev })
	if i == len(s.runs) {
		return time.Time{}, false
	}
	return s.runs[i].at, true
}

// Tracker follows every connected stream against recent changes.
type Tracker struct {
	log ChangeLog

	mu      sync.Mutex
	spans   map[string]map[string]map[string]*span // group → type → version → span
	streams map[int64]*stream
	changed chan struct{}
	// recent is a copy of the change log's newest changes up to fetched, read once per new revision
	// rather than once per ACK (the log is the store, behind the store's lock).
	recent  []registry.Change
	fetched uint64
	// current is each group's versions as last published (group → type → version).
	current map[string]map[string]string
	// evaluateEveryStream turns off Published's skipping of streams that cannot have advanced; tests
	// compare the two.
	evaluateEveryStream bool
}

// recentSize bounds the changes the tracker keeps; the store keeps 256.
const recentSize = 512

// New returns a tracker reading changes from log.
func New(log ChangeLog) *Tracker {
	return &Tracker{log: log, spans: map[string]map[string]map[string]*span{}, streams: map[int64]*stream{},
		current: map[string]map[string]string{}}
}

// changesIn returns the known changes with from < revision ≤ to, oldest first. Called with t.mu held.
func (t *Tracker) changesIn(from, to uint64) []registry.Change {
	if to > t.fetched {
		t.recent = append(t.recent, t.log.Changes(t.fetched, to)...)
		if len(t.recent) > recentSize {
			t.recent = append([]registry.Change(nil), t.recent[len(t.recent)-recentSize/2:]...)
		}
		t.fetched = to
	}
	lo := sort.Search(len(t.recent), func(i int) bool { return t.recent[i].Revision > from })
	hi := sort.Search(len(t.recent), func(i int) bool { return t.recent[i].Revision > to })
	return t.recent[lo:hi]
}

// Published records that group's snapshot at revision has these versions (type URL → version).
func (t *Tracker) Published(group string, revision uint64, versions map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.spans[group]
	if g == nil {
		g = map[string]map[string]*span{}
		t.spans[group] = g
	}
	for typ, v := range versions {
		if g[typ] == nil {
			g[typ] = map[string]*span{}
		}
		if sp := g[typ][v]; sp != nil {
			sp.last = max(sp.last, revision)
		} else {
			g[typ][v] = &span{first: revision, last: revision}
		}
		t.pruneSpans(g[typ])
	}
	// Nodes already on these versions now contain this revision's change without any new ACK. With
	// 10,000 streams, evaluating every one on every publish cost ~10 ms of map lookups under the lock every
	// ACK takes, and almost none can have advanced: see cannotAdvance.
	var changed []string
	for typ, v := range versions {
		if t.current[group][typ] != v {
			changed = append(changed, typ)
		}
	}
	t.current[group] = maps.Clone(versions)
	now := time.Now()
	for _, s := range t.streams {
		if s.group == group && (t.evaluateEveryStream || !cannotAdvance(s, changed, versions)) {
			t.evaluate(s, now)
		}
	}
	t.notify()
}

// cannotAdvance reports whether a publish that changed these types' versions leaves what the stream
// contains as it was. What it contains is bounded by the lowest span end among the versions it ACKed
// (evaluate). A publish extends the current versions' spans by one revision, which moves no bound below
// the previous revision, and a changed type's new version is one the stream has not ACKed (none has
// yet), unless the version came back. So a stream sent a changed type, ACKed at another version, keeps
// its bound there, unless a version it ACKed came back, which moves its span's end from the past to now.
// Evaluating a stream whenever its sent types or ACKs change (Sent, Acked) keeps this true.
func cannotAdvance(s *stream, changed []string, versions map[string]string) bool {
	behind := false
	for _, typ := range changed {
		if !s.sent[typ] {
			continue
		}
		if s.acked[typ] == versions[typ] {
			return false
		}
		behind = true
	}
	return behind
}

// pruneSpans forgets versions that stopped being current before the oldest change the tracker still knows:
// no report can ask about them, and a stream still on one is pending for every known change either way.
// Without this, every endpoint change would leave a version behind for good. Called with t.mu held.
func (t *Tracker) pruneSpans(versions map[string]*span) {
	if len(versions) <= recentSize || len(t.recent) == 0 {
		return
	}
	oldest := t.recent[0].Revision
	for v, sp := range versions {
		if sp.last < oldest {
			delete(versions, v)
		}
	}
}

// Opened starts following a stream of a node in group.
func (t *Tracker) Opened(id int64, group string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.streams[id]; !ok {
		t.streams[id] = &stream{group: group, opened: time.Now(), acked: map[string]string{}, sent: map[string]bool{},
			nacked: map[uint64]string{}}
	}
}

// Closed stops following a stream.
func (t *Tracker) Closed(id int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.streams, id)
	t.notify()
}

// Sent records that a stream was sent a type (so its ACK is needed before it contains a change).
func (t *Tracker) Sent(id int64, typeURL string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.streams[id]; s != nil && !s.sent[typeURL] {
		s.sent[typeURL] = true
		// What the stream contains depends on the types it was sent; Published relies on it being
		// evaluated whenever that changes (see cannotAdvance).
		t.evaluate(s, time.Now())
	}
}

// Acked records an ACK and returns the changes the stream came to contain with it.
func (t *Tracker) Acked(id int64, typeURL, version string, at time.Time) []registry.Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.streams[id]
	if s == nil {
		return nil
	}
	s.acked[typeURL] = version
	reached := t.evaluate(s, at)
	t.notify()
	return reached
}

// Nacked records a rejected version and returns the changes it is attributed to: those since the version the
// node last ACKed for the type, up to the revision at which the rejected version first appeared.
func (t *Tracker) Nacked(id int64, typeURL, version, detail string) []registry.Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.streams[id]
	if s == nil {
		return nil
	}
	versions := t.spans[s.group][typeURL]
	bad := versions[version]
	if bad == nil {
		return nil
	}
	var from uint64
	if good := versions[s.acked[typeURL]]; good != nil {
		from = good.last
	}
	changes := t.log.Changes(from, bad.first)
	for _, c := range changes {
		if c.Revision > s.upTo {
			s.nacked[c.Revision] = detail
		}
	}
	// A stream that keeps rejecting one type never reaches the changes it rejected, which is what would
	// clear them: forget those far older than this rejection (the store's log keeps fewer), so the
	// stream's memory stays bounded.
	for rev := range s.nacked {
		if rev+recentSize < bad.first {
			delete(s.nacked, rev)
		}
	}
	t.notify()
	return changes
}

// evaluate records every recent change the stream now contains. Called with t.mu held.
func (t *Tracker) evaluate(s *stream, at time.Time) []registry.Change {
	if len(s.sent) == 0 {
		return nil
	}
	low := ^uint64(0) // the stream contains every change up to the lowest "last" among its ACKed versions
	for typ := range s.sent {
		sp := t.spans[s.group][typ][s.acked[typ]]
		if sp == nil {
			return nil
		}
		low = min(low, sp.last)
	}
	if low <= s.upTo {
		return nil
	}
	reached := t.changesIn(s.upTo, low)
	for _, c := range reached {
		delete(s.nacked, c.Revision)
		if c.AcceptedAt.After(s.opened) { // a node that connected later did not wait for it
			propagation.Observe(at.Sub(c.AcceptedAt).Seconds())
		}
	}
	s.upTo = low
	s.runs = append(s.runs, run{to: low, at: at})
	// Forget runs of changes that fell out of the log, so a long-lived stream's memory stays bounded.
	if len(t.recent) > 0 && len(s.runs) > 1 && s.runs[0].to < t.recent[0].Revision {
		i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].to >= t.recent[0].Revision })
		s.runs = append(s.runs[:0], s.runs[i:]...)
	}
	return reached
}

// notify wakes waiters. The channel is made only when a waiter asks for it (see Wait): ACKs come
// thousands a second, and nobody is waiting for almost all of them.
func (t *Tracker) notify() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}

// Report is a change's propagation, as GET /changes/{id} shows it.
type Report struct {
	registry.Change
	Nodes struct {
		Acked   int `json:"acked"`
		Nacked  int `json:"nacked"`
		Pending int `json:"pending"`
	} `json:"nodes"`
	FirstAckMs *float64          `json:"first_ack_ms,omitempty"`
	LastAckMs  *float64          `json:"last_ack_ms,omitempty"` // set once no node is pending
	Rejections map[string]string `json:"rejections,omitempty"`  // stream → NACK detail
}

// Report returns the propagation of change id, or false if it is unknown (too old, or never made).
func (t *Tracker) Report(id uint64) (Report, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.report(id)
}

func (t *Tracker) report(id uint64) (Report, bool) {
	if id == 0 {
		return Report{}, false
	}
	cs := t.log.Changes(id-1, id)
	if len(cs) == 0 {
		return Report{}, false
	}
	r := Report{Change: cs[0]}
	var first, last time.Time
	for sid, s := range t.streams {
		switch at, ok := s.reachedAt(id); {
		case ok:
			r.Nodes.Acked++
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if at.After(last) {
				last = at
			}
		case s.nacked[id] != "":
			r.Nodes.Nacked++
			if r.Rejections == nil {
				r.Rejections = map[string]string{}
			}
			r.Rejections[itoa(sid)] = s.nacked[id]
		default:
			r.Nodes.Pending++
		}
	}
	if !first.IsZero() {
		r.FirstAckMs = millis(first.Sub(r.AcceptedAt))
		if r.Nodes.Pending == 0 {
			r.LastAckMs = millis(last.Sub(r.AcceptedAt))
		}
	}
	return r, true
}

// Recent returns the reports of the newest n changes, newest first.
func (t *Tracker) Recent(n int) []Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := t.log.Changes(0, 0)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Revision > cs[j].Revision })
	var out []Report
	for _, c := range cs {
		if len(out) == n {
			break
		}
		if r, ok := t.report(c.Revision); ok {
			out = append(out, r)
		}
	}
	return out
}

// waitInterval spaces out the reports a waiter computes: each is a pass over every stream, and ACKs
// from a large fleet come thousands a second.
const waitInterval = 10 * time.Millisecond

// Wait blocks until change id has no pending node, or ctx ends, and returns the report then.
func (t *Tracker) Wait(ctx context.Context, id uint64) (Report, bool) {
	for {
		t.mu.Lock()
		r, ok := t.report(id)
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		changed := t.changed
		t.mu.Unlock()
		if !ok || r.Nodes.Pending == 0 {
			return r, ok
		}
		select {
		case <-ctx.Done():
			return r, ok
		case <-changed:
		}
		select {
		case <-ctx.Done():
		case <-time.After(waitInterval):
		}
	}
}
