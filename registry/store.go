package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// Backend persists Config. The store calls it before a change becomes visible, so a failed save changes
// nothing. Implementations: FileBackend (default), the Consul KV backend.
type Backend interface {
	// Load returns the persisted configuration and the last revision, if the backend keeps one.
	Load(ctx context.Context) (Config, uint64, error)
	// Save persists next, in which the upstreams and snippets that c names changed (a name missing from next
	// was deleted); c.Revision is the revision next will have.
	Save(ctx context.Context, next Config, c Change) error
	// Name says where state lives, for the admin API ("file:./data/dynup.json").
	Name() string
}

// NotFoundError means the named object does not exist.
type NotFoundError struct{ Msg string }

func (e *NotFoundError) Error() string { return e.Msg }

// ConflictError means the write clashes with existing state (a domain served twice, a lost CAS race).
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// UnavailableError means the backend could not be reached; nothing changed.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "store unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Store owns the configuration and the discovered servers, and publishes every accepted change as a new
// State to its subscribers. Writes are all or nothing: validated, then persisted, then published.
type Store struct {
	backend Backend

	mu         sync.Mutex // serialises writes; state reads are lock-free through current
	cfg        Config
	cfgWarns   []Warning             // objects the configuration backend dropped
	discovered map[string]Discovered // by source name
	current    *State
	subs       map[chan *State]struct{}
	history    []Change                         // the newest changes, oldest first, at most historySize
	health     map[string]map[ServerKey]Verdict // unhealthy servers by health source
	lua        *luaChecker                      // validates snippet sources, outside mu
	parts      *buildParts                      // what the current state was built from (see build)
	// healthDirty names the upstreams whose health verdicts were stored since the current state was
	// built: the next state must apply them, whatever its change lists.
	healthDirty map[string]bool
	partsBuilds int // states built from parts, which tests check the path is taken for
}

// errUnchanged lets an update function say the write is a no-op: nothing is saved or published.
var errUnchanged = errors.New("unchanged")

// historySize bounds the change log kept for NACK attribution and rollout tracking.
const historySize = 256

// NewStore loads the backend's configuration and builds the first state.
func NewStore(ctx context.Context, backend Backend) (*Store, error) {
	cfg, rev, err := backend.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", backend.Name(), err)
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = map[string]Upstream{}
	}
	lua := newLuaChecker()
	// A snippet that no longer validates is kept (it can be rolled back) but not served: see activeSnippets.
	cfg.Snippets = lua.stamp(cfg.Snippets)
	for name, u := range cfg.Upstreams {
		// The key names the upstream (state lookups and cluster names rely on unique names); a body that
		// names another upstream is ambiguous.
		if u.Name == "" {
			u.Name = name
		}
		if u.Name != name {
			return nil, fmt.Errorf("load %s: upstream %q holds an upstream named %q", backend.Name(), name, u.Name)
		}
		u.Normalize()
		if err := u.Validate(); err != nil {
			return nil, fmt.Errorf("load %s: upstream %q: %w", backend.Name(), name, err)
		}
		cfg.Upstreams[name] = u
	}
	s := &Store{backend: backend, cfg: cfg, discovered: map[string]Discovered{}, subs: map[chan *State]struct{}{}, lua: lua}
	s.current, s.parts = s.build(rev, Change{Revision: rev, Source: "load", Upstreams: sortedKeys(cfg.Upstreams),
		Snippets: sortedKeys(cfg.Snippets)})
	return s, nil
}

// State returns the current state. Callers must not modify it.
func (s *Store) State() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// BackendName says where configuration is kept.
func (s *Store) BackendName() string { return s.backend.Name() }

// PutUpstream creates or replaces one upstream definition.
func (s *Store) PutUpstream(ctx context.Context, u Upstream, source string) (*State, error) {
	u.Normalize()
	if err := u.Validate(); err != nil {
		return nil, err
	}
	for i := range u.Servers {
		// The store says where servers came from and whether they are healthy, not the caller.
		u.Servers[i].Source, u.Servers[i].Health = "", nil
	}
	return s.update(ctx, source, []string{u.Name}, func(cfg Config) (Change, error) {
		// A write that keeps an upstream's domains takes none from another upstream, and one that adds no
		// servers cannot pass the server limit. Both checks walk every upstream (~1.5 ms with 10,000), and
		// most writes change servers only.
		old, replacing := cfg.Upstreams[u.Name]
		if !replacing || !slices.Equal(old.EffectiveDomains(), u.EffectiveDomains()) {
			if err := domainConflict(cfg, &u); err != nil {
				return Change{}, err
			}
		}
		if !replacing || len(u.Servers) > len(old.Servers) {
			if err := CheckConfigLimits(cfg, &u); err != nil {
				return Change{}, err
			}
		}
		cfg.Upstreams[u.Name] = u
		return Change{Upstreams: []string{u.Name}}, nil
	})
}

// DeleteUpstream removes one upstream definition.
func (s *Store) DeleteUpstream(ctx context.Context, name, source string) (*State, error) {
	return s.update(ctx, source, []string{name}, func(cfg Config) (Change, error) {
		if _, ok := cfg.Upstreams[name]; !ok {
			return Change{}, &NotFoundError{Msg: fmt.Sprintf("upstream %s not found", name)}
		}
		delete(cfg.Upstreams, name)
		return Change{Upstreams: []string{name}}, nil
	})
}

// Upstream returns the stored definition (without discovered servers).
func (s *Store) Upstream(name string) (Upstream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.cfg.Upstreams[name]
	return u, ok
}

// update applies fn to the configuration, persists the result, and publishes it. fn says what it changed;
// errUnchanged from fn means nothing to do.
//
// fn may change only the upstreams named in touches, and any snippet. It works on the configuration itself,
// not a copy, with those upstreams' previous definitions kept aside and put back if fn or the save fails:
// copying 10,000 upstreams for every write cost ~3 ms. The snippets, a few, are copied.
func (s *Store) update(ctx context.Context, source string, touches []string, fn func(Config) (Change, error)) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := Config{Upstreams: s.cfg.Upstreams, Snippets: maps.Clone(s.cfg.Snippets)}
	if next.Snippets == nil {
		next.Snippets = map[string]Snippet{}
	}
	type kept struct {
		u      Upstream
		exists bool
	}
	before := make(map[string]kept, len(touches))
	for _, name := range touches {
		u, ok := next.Upstreams[name]
		before[name] = kept{u, ok}
	}
	restore := func() {
		for name, k := range before {
			if k.exists {
				next.Upstreams[name] = k.u
			} else {
				delete(next.Upstreams, name)
			}
		}
	}
	change, err := fn(next)
	for _, name := range change.Upstreams {
		if _, ok := before[name]; !ok {
			panic("registry: a write changed upstream " + name + ", which it did not say it touches")
		}
	}
	if err == errUnchanged {
		restore()
		return s.current, nil
	}
	if err != nil {
		restore()
		return nil, err
	}
	change.Revision, change.Source = s.current.Revision+1, source
	if err := s.backend.Save(ctx, next, change); err != nil {
		restore()
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			return nil, err
		}
		return nil, &UnavailableError{Err: err}
	}
	s.cfg = next
	return s.publish(change), nil
}

// ReplaceConfig installs configuration read from a watched backend (Consul KV). Invalid upstreams are
// dropped with a warning instead of failing the whole load; snippets that fail validation are kept but not
// served (see activeSnippets). fresh, if not nil, is asked under the store's lock whether cfg is still
// current: a watch result read just before a write of ours must not undo it.
func (s *Store) ReplaceConfig(cfg Config, source string, warnings []Warning, fresh func() bool) *State {
	snippets := s.lua.stamp(cfg.Snippets) // before the lock: validation executes Lua
	s.mu.Lock()
	defer s.mu.Unlock()
	if fresh != nil && !fresh() {
		return s.current
	}
	clean := Config{Upstreams: map[string]Upstream{}, Snippets: snippets}
	for name, u := range cfg.Upstreams {
		if u.Name == "" {
			u.Name = name
		}
		u.Normalize()
		err := u.Validate()
		if err == nil && u.Name != name {
			err = fmt.Errorf("key %q holds an upstream named %q", name, u.Name)
		}
		if err != nil {
			warnings = append(warnings, Warning{Object: "upstream/" + name, Msg: "dropped: " + err.Error()})
			continue
		}
		clean.Upstreams[name] = u
	}
	warnings = append(warnings, dropDomainTakeovers(s.cfg, clean)...)
	changed := changedNames(s.cfg.Upstreams, clean.Upstreams)
	changedSnippets := changedNames(s.cfg.Snippets, clean.Snippets)
	warningsChanged := !sameJSON(s.cfgWarns, warnings)
	s.cfg, s.cfgWarns = clean, warnings
	if len(changed) == 0 && len(changedSnippets) == 0 && !warningsChanged {
		return s.current
	}
	return s.publish(Change{Revision: s.current.Revision + 1, Source: source, Upstreams: changed, Snippets: changedSnippets})
}

// dropDomainTakeovers removes from next the upstreams, new or changed since cur, that claim a domain an
// unchanged upstream serves: a hand edit in KV must not take a domain away from what is being served (the
// admin API refuses the same write with 409).
func dropDomainTakeovers(cur, next Config) []Warning {
	incumbents := Config{Upstreams: map[string]Upstream{}}
	for name, u := range next.Upstreams {
		if old, ok := cur.Upstreams[name]; ok && sameJSON(old, u) {
			incumbents.Upstreams[name] = u
		}
	}
	var warnings []Warning
	for _, name := range sortedKeys(next.Upstreams) {
		u := next.Upstreams[name]
		if _, ok := incumbents.Upstreams[name]; ok {
			continue
		}
		if err := domainConflict(incumbents, &u); err != nil {
			warnings = append(warnings, Warning{Object: "upstream/" + name, Msg: "dropped: " + err.Error()})
			delete(next.Upstreams, name)
		}
	}
	return warnings
}

// SetDiscovered replaces the servers one discovery source found. A source that failed must not call this:
// keeping the last good servers is the caller's duty (never push an empty set because a source failed).
func (s *Store) SetDiscovered(source string, d Discovered) *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.discovered[source]
	changed := changedNames(old, d)
	if len(changed) == 0 {
		return s.current
	}
	s.discovered[source] = d
	return s.publish(Change{Revision: s.current.Revision + 1, Source: source, Upstreams: changed})
}

// Changes returns the recent changes with from < revision ≤ to, oldest first (to 0 means no upper bound).
func (s *Store) Changes(from, to uint64) []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Change
	for _, c := range s.history {
		if c.Revision > from && (to == 0 || c.Revision <= to) {
			out = append(out, c)
		}
	}
	return out
}

// Subscribe returns a channel that always holds the newest state: a slow reader skips intermediate states
// and never blocks the store. The current state is delivered at once.
func (s *Store) Subscribe() (<-chan *State, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan *State, 1)
	ch <- s.current
	s.subs[ch] = struct{}{}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, ch)
	}
}

func (s *Store) publish(c Change) *State {
	c.AcceptedAt = time.Now()
	if len(s.healthDirty) > 0 {
		// Verdicts stored since the last state (SetHealth keeps ones that differ only in time without
		// publishing them) change these upstreams too: the record must name every upstream that differs,
		// because the publisher compares only those.
		c.Upstreams = slices.Compact(slices.Sorted(slices.Values(slices.Concat(c.Upstreams, sortedKeys(s.healthDirty)))))
	}
	s.history = append(s.history, c)
	if len(s.history) > historySize {
		s.history = slices.Clone(s.history[len(s.history)-historySize:])
	}
	st, parts := s.build(c.Revision, c)
	s.current, s.parts, s.healthDirty = st, parts, nil
	for ch := range s.subs {
		select { // drop the stale state the reader has not taken yet
		case <-ch:
		default:
		}
		ch <- st
	}
	return st
}

func (s *Store) configSource() string {
	if _, ok := s.backend.(*FileBackend); ok {
		return "admin"
	}
	return "consul-kv"
}

// changedNames lists keys whose values differ between a and b, including added and removed ones.
func changedNames[V any](a, b map[string]V) []string {
	var out []string
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !sameJSON(va, vb) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// sameJSON compares two plain-data values by their encoding, so nil and empty slices (which a round trip
// through JSON or Consul KV does not keep apart) are the same.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
