package healthcheck

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/dynup/dynup/registry"
)

// Source is the name the checker's verdicts carry in the store (Server.Health.Source).
const Source = "active"

// Store is what the checker needs of registry.Store: the servers to check, and where verdicts go.
type Store interface {
	Subscribe() (<-chan *registry.State, func())
	SetHealth(source string, unhealthy map[registry.ServerKey]registry.Verdict) *registry.State
}

// DefaultMaxProbes bounds the probes in flight at once, so ten thousand servers do not mean ten thousand
// sockets at the same moment.
const DefaultMaxProbes = 256

// Checker is dynup's own heartbeat: it probes every server of the upstreams whose check says checker
// "dynup" or "both", each on its upstream's schedule, once for the whole fleet, and reports the servers it
// finds unhealthy to the store, which marks them UNHEALTHY for every node.
//
// It follows the store: a new server is probed at once (and counts as healthy until a probe says
// otherwise, as in checkups), a removed server's state is dropped, a changed check restarts the probing
// with the new settings while the server keeps its current health.
type Checker struct {
	store  Store
	log    *slog.Logger
	prober *prober
	sem    chan struct{}

	mu        sync.Mutex
	targets   map[registry.ServerKey]*target
	unhealthy map[registry.ServerKey]registry.Verdict
	running   bool
	started   time.Time
	lastCheck time.Time
	changed   chan struct{} // closed and replaced on every recorded probe and every sync, for Wait

	reportMu sync.Mutex // serialises SetHealth calls so the last call carries the newest set
}

type target struct {
	key    registry.ServerKey
	check  Check
	cancel context.CancelFunc
	done   chan struct{}
	added  time.Time

	// Guarded by Checker.mu.
	healthy     bool
	since       time.Time
	failures    int // consecutive
	successes   int // consecutive
	checks      uint64
	lastCheck   time.Time
	lastError   string
	lastLatency time.Duration
}

// New returns a checker for store; Run starts it. maxProbes ≤ 0 means DefaultMaxProbes.
func New(store Store, log *slog.Logger, maxProbes int) *Checker {
	if maxProbes <= 0 {
		maxProbes = DefaultMaxProbes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{store: store, log: log, prober: newProber(), sem: make(chan struct{}, maxProbes),
		targets: map[registry.ServerKey]*target{}, unhealthy: map[registry.ServerKey]registry.Verdict{},
		changed: make(chan struct{})}
}

// Run follows the store until ctx ends, then stops every probe.
func (c *Checker) Run(ctx context.Context) {
	states, unsubscribe := c.store.Subscribe()
	defer unsubscribe()
	c.mu.Lock()
	c.running, c.started = true, time.Now()
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		targets := slicesOf(c.targets)
		c.mu.Unlock()
		for _, t := range targets {
			t.cancel()
			<-t.done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-states:
			c.sync(ctx, st)
		}
	}
}

// wanted lists the servers dynup must probe in st, with their checks. Servers marked down are out anyway.
func wanted(st *registry.State) map[registry.ServerKey]Check {
	out := map[registry.ServerKey]Check{}
	for i := range st.Upstreams {
		u := &st.Upstreams[i]
		c, ok := ActiveCheck(u)
		if !ok || !c.ByDynup() {
			continue
		}
		for j := range u.Servers {
			s := &u.Servers[j]
			if !s.Down {
				out[registry.ServerKey{Upstream: u.Name, Host: s.Host, Port: s.Port}] = c
			}
		}
	}
	return out
}

// sync starts, restarts and stops probing to match st.
func (c *Checker) sync(ctx context.Context, st *registry.State) {
	want := wanted(st)
	var stopped []*target
	c.mu.Lock()
	verdictsChanged := false
	for k, t := range c.targets {
		check, ok := want[k]
		if ok && reflect.DeepEqual(check, t.check) {
			continue
		}
		stopped = append(stopped, t)
		delete(c.targets, k)
		if !ok {
			// Removed (or no longer checked by dynup): nothing of it is kept.
			if _, was := c.unhealthy[k]; was {
				delete(c.unhealthy, k)
				verdictsChanged = true
			}
			continue
		}
		// Same server, new settings: probe with them from now on, keeping its health.
		nt := c.start(ctx, k, check)
		nt.healthy, nt.since, nt.added = t.healthy, t.since, t.added
	}
	for k, check := range want {
		if _, ok := c.targets[k]; !ok {
			c.start(ctx, k, check)
		}
	}
	c.notify()
	c.mu.Unlock()
	for _, t := range stopped {
		t.cancel() // their goroutines check that they are still current before recording anything
	}
	if verdictsChanged {
		c.report()
	}
}

// start registers a target and its probe loop. Caller holds mu.
func (c *Checker) start(ctx context.Context, k registry.ServerKey, check Check) *target {
	tctx, cancel := context.WithCancel(ctx)
	now := time.Now()
	t := &target{key: k, check: check, cancel: cancel, done: make(chan struct{}), added: now, healthy: true, since: now}
	c.targets[k] = t
	go c.loop(tctx, t)
	return t
}

// loop probes t now and then every interval (plus up to jitter) until its context ends.
func (c *Checker) loop(ctx context.Context, t *target) {
	defer close(t.done)
	addr := net.JoinHostPort(t.key.Host, strconv.Itoa(t.key.Port))
	for {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		began := time.Now()
		err := c.prober.probe(ctx, t.check, addr)
		<-c.sem
		if ctx.Err() != nil {
			return // stopped mid-probe: the result belongs to a target that no longer exists
		}
		c.record(t, began, time.Since(began), err)
		wait := t.check.Interval
		if t.check.Jitter > 0 {
			wait += rand.N(t.check.Jitter)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// record applies one probe result with the check's thresholds and reports a change of health.
func (c *Checker) record(t *target, at time.Time, latency time.Duration, err error) {
	c.mu.Lock()
	if c.targets[t.key] != t {
		c.mu.Unlock()
		return
	}
	now := time.Now()
	t.checks++
	t.lastCheck, t.lastLatency = at, latency
	c.lastCheck = at
	changed := false
	if err == nil {
		t.successes++
		t.failures = 0
		t.lastError = ""
		if !t.healthy && t.successes >= t.check.HealthyThreshold {
			t.healthy, t.since = true, now
			delete(c.unhealthy, t.key)
			changed = true
		}
	} else {
		t.failures++
		t.successes = 0
		t.lastError = err.Error()
		if t.healthy && t.failures >= t.check.UnhealthyThreshold {
			t.healthy, t.since = false, now
			c.unhealthy[t.key] = registry.Verdict{Reason: t.lastError, Since: now}
			changed = true
		}
	}
	c.notify()
	c.mu.Unlock()
	probes.WithLabelValues(t.check.Type, resultLabel(err)).Inc()
	if changed {
		if err != nil {
			c.log.Warn("server unhealthy", "source", "heartbeat", "server", t.key.String(), "err", err, "failures", t.failures)
		} else {
			c.log.Info("server healthy again", "source", "heartbeat", "server", t.key.String())
		}
		c.report()
	}
}

// notify wakes Wait callers. Caller holds mu.
func (c *Checker) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// report gives the store the current set of unhealthy servers.
func (c *Checker) report() {
	c.reportMu.Lock()
	defer c.reportMu.Unlock()
	c.mu.Lock()
	set := maps.Clone(c.unhealthy)
	c.mu.Unlock()
	unhealthyServers.Set(float64(len(set)))
	c.store.SetHealth(Source, set)
}

func resultLabel(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}

func slicesOf(m map[registry.ServerKey]*target) []*target {
	out := make([]*target, 0, len(m))
	for _, t := range m {
		out = append(out, t)
	}
	return out
}
