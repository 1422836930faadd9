package feedback

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dynup/dynup/registry"
)

type fixture struct {
	t      *testing.T
	store  *registry.Store
	states <-chan *registry.State
	tr     *Tracker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fb, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(context.Background(), fb)
	if err != nil {
		t.Fatal(err)
	}
	states, unsubscribe := store.Subscribe()
	t.Cleanup(unsubscribe)
	tr := New(store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{t: t, store: store, states: states, tr: tr}
}

// put stores u and waits until the tracker knows its servers.
func (f *fixture) put(u registry.Upstream) {
	f.t.Helper()
	if _, err := f.store.PutUpstream(context.Background(), u, "admin"); err != nil {
		f.t.Fatal(err)
	}
	f.until(func() bool {
		_, st := f.tr.Status()
		for _, s := range u.Servers {
			if _, ok := st[registry.ServerKey{Upstream: u.Name, Host: s.Host, Port: s.Port}]; !ok {
				return false
			}
		}
		return true
	})
}

// until waits for cond, woken by each published state (the tracker acts on states and publishes verdicts).
func (f *fixture) until(cond func() bool) {
	f.t.Helper()
	timeout := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond) // the tracker's Run loop takes states after we see them
	defer tick.Stop()
	for !cond() {
		select {
		case <-f.states:
		case <-tick.C:
		case <-timeout:
			f.t.Fatal("condition not met within 20s")
		}
	}
}

func (f *fixture) health(upstream, host string) *registry.ServerHealth {
	u, _ := f.store.State().Upstream(upstream)
	for _, s := range u.Servers {
		if s.Host == host {
			return s.Health
		}
	}
	f.t.Fatalf("no server %s in %s", host, upstream)
	return nil
}

func fail(tr *Tracker, upstream, host, reporter string) (ServerStatus, error) {
	return tr.Report(Report{Upstream: upstream, Host: host, Port: 80, Reporter: reporter, Failures: 1})
}

func servers(hosts ...string) []registry.Server {
	var out []registry.Server
	for _, h := range hosts {
		out = append(out, registry.Server{Host: h, Port: 80})
	}
	return out
}

func TestFailuresFromSeveralReportersTakeAServerOutForFailTimeout(t *testing.T) {
	f := newFixture(t)
	f.put(registry.Upstream{Name: "web", Servers: servers("10.0.0.1", "10.0.0.2", "10.0.0.3"),
		Passive: &registry.PassiveHealth{MaxFails: new(3), FailTimeout: &registry.Duration{Duration: 300 * time.Millisecond}}})
	for i, node := range []string{"lrs:a", "lrs:b"} {
		if st, err := fail(f.tr, "web", "10.0.0.2", node); err != nil || st.Out || st.Failures != uint64(i+1) {
			t.Fatalf("failure %d: %+v %v", i+1, st, err)
		}
	}
	if f.health("web", "10.0.0.2") != nil {
		t.Fatal("out before max_fails")
	}
	began := time.Now()
	st, err := fail(f.tr, "web", "10.0.0.2", "http:c")
	if err != nil || !st.Out || st.Reporters != 3 {
		t.Fatalf("third failure: %+v %v", st, err)
	}
	h := f.health("web", "10.0.0.2")
	if h == nil || h.Source != Source {
		t.Fatalf("the published state must mark the server: %+v", h)
	}
	f.until(func() bool { return f.health("web", "10.0.0.2") == nil })
	if back := time.Since(began); back < 300*time.Millisecond {
		t.Fatalf("back after %s, before fail_timeout", back)
	}
	if _, st := f.tr.Status(); st[registry.ServerKey{Upstream: "web", Host: "10.0.0.2", Port: 80}].Failures != 0 {
		t.Fatal("the count must start again after the time out")
	}
}

func TestPerServerLimitsAndUnknowns(t *testing.T) {
	f := newFixture(t)
	srv := servers("10.0.0.1", "10.0.0.2", "10.0.0.3")
	srv[0].MaxFails = new(1)
	srv[1].MaxFails = new(0)
	f.put(registry.Upstream{Name: "web", Servers: srv})
	if st, _ := fail(f.tr, "web", "10.0.0.1", "a"); !st.Out || st.MaxFails != 1 {
		t.Fatalf("max_fails 1: %+v", st)
	}
	for range 10 {
		if st, _ := fail(f.tr, "web", "10.0.0.2", "a"); st.Out {
			t.Fatal("max_fails 0 must turn accounting off")
		}
	}
	if st, _ := fail(f.tr, "web", "10.0.0.3", "a"); st.Out || st.MaxFails != 3 || st.FailTimeout != 10*1e9 {
		t.Fatalf("defaults: %+v", st)
	}
	var unknown *UnknownError
	if _, err := fail(f.tr, "nope", "10.0.0.1", "a"); !errors.As(err, &unknown) || unknown.Field != "upstream" {
		t.Fatalf("unknown upstream: %v", err)
	}
	if _, err := fail(f.tr, "web", "10.9.9.9", "a"); !errors.As(err, &unknown) || unknown.Field != "host" {
		t.Fatalf("unknown server: %v", err)
	}
	// Turning accounting off brings a server back at once; removing it forgets it.
	srv[0].MaxFails = new(0)
	f.put(registry.Upstream{Name: "web", Servers: srv})
	f.until(func() bool { return f.health("web", "10.0.0.1") == nil })
	f.put(registry.Upstream{Name: "web", Servers: srv[1:]})
	f.until(func() bool {
		_, st := f.tr.Status()
		_, ok := st[registry.ServerKey{Upstream: "web", Host: "10.0.0.1", Port: 80}]
		return !ok
	})
}

// The last server in service is never taken out (checkups' protected), unless protection is off.
func TestProtectedKeepsTheLastServer(t *testing.T) {
	f := newFixture(t)
	f.put(registry.Upstream{Name: "one", Servers: servers("10.0.0.1"), Passive: &registry.PassiveHealth{MaxFails: new(1)}})
	if st, _ := fail(f.tr, "one", "10.0.0.1", "a"); !st.Out {
		t.Fatal("the tracker counts the server out")
	}
	f.until(func() bool {
		_, st := f.tr.Status()
		return st[registry.ServerKey{Upstream: "one", Host: "10.0.0.1", Port: 80}].Out
	})
	if h := f.health("one", "10.0.0.1"); h != nil {
		t.Fatalf("the only server of a protected upstream must stay in service: %+v", h)
	}
	f.put(registry.Upstream{Name: "two", Servers: servers("10.0.0.1", "10.0.0.2"), Passive: &registry.PassiveHealth{MaxFails: new(1)},
		Protected: new(false)})
	fail(f.tr, "two", "10.0.0.1", "a")
	fail(f.tr, "two", "10.0.0.2", "a")
	f.until(func() bool { return f.health("two", "10.0.0.1") != nil && f.health("two", "10.0.0.2") != nil })
}
