package registry

import (
	"context"
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"time"
)

// A state built from the current state's parts is the state a full build gives, whatever the sequence of
// admin writes, discoveries and health verdicts (including domain conflicts between configured and
// discovered upstreams, upstreams that exist only through discovery, and verdicts that change only their
// time); and every change record names every upstream that differs from the state before, since the
// publisher compares only those.
func TestStateFromPartsEqualsFullBuild(t *testing.T) {
	for seed := int64(1); seed <= 30; seed++ {
		checkStateFromParts(t, seed)
	}
}

func checkStateFromParts(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	s := newFileStore(t, t.TempDir())
	names := []string{"a", "b", "c", "d", "e"}
	hosts := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	servers := func() []Server {
		var out []Server
		for i := rng.Intn(3); i >= 0; i-- {
			out = append(out, Server{Host: hosts[rng.Intn(len(hosts))], Port: 80 + rng.Intn(2), Weight: rng.Intn(3)})
		}
		return out
	}
	discovered := map[string]Discovered{}
	verdicts := map[string]map[ServerKey]Verdict{}
	fromParts := 0
	for step := 0; step < 600; step++ {
		before, prev := s.partsBuilds, s.State()
		name := names[rng.Intn(len(names))]
		switch op := rng.Intn(11); {
		case op == 10: // a hand edit of the whole configuration, as Consul KV delivers it
			cfg := Config{Upstreams: map[string]Upstream{}}
			for k, u := range s.cfg.Upstreams {
				cfg.Upstreams[k] = u
			}
			u := Upstream{Name: name, Servers: servers()}
			if rng.Intn(3) == 0 {
				u.Domains = []string{names[rng.Intn(len(names))]} // may take a domain: dropped with a warning
			}
			if rng.Intn(4) == 0 {
				delete(cfg.Upstreams, name)
			} else {
				cfg.Upstreams[name] = u
			}
			s.ReplaceConfig(cfg, "consul-kv", nil, nil)
		case op < 4:
			u := Upstream{Name: name, Servers: servers()}
			if rng.Intn(4) == 0 {
				u.Domains = []string{names[rng.Intn(len(names))]} // sometimes another's (default) domain
			}
			s.PutUpstream(ctx, u, "admin") // a conflict is refused: fine
		case op < 5:
			s.DeleteUpstream(ctx, name, "admin")
		case op < 7:
			src := []string{"consul-catalog", "file"}[rng.Intn(2)]
			d := Discovered{}
			for k, v := range discovered[src] {
				d[k] = v
			}
			if rng.Intn(5) == 0 {
				delete(d, name)
			} else {
				ds := DiscoveredService{Servers: servers()}
				if rng.Intn(3) == 0 {
					ds.Domains = []string{names[rng.Intn(len(names))]} // as Consul meta dynup-domains asks
				}
				d[name] = ds
			}
			discovered[src] = d
			s.SetDiscovered(src, d)
		default:
			src := []string{"active", "feedback"}[rng.Intn(2)]
			v := map[ServerKey]Verdict{}
			for k, old := range verdicts[src] {
				v[k] = old
			}
			k := ServerKey{Upstream: name, Host: hosts[rng.Intn(len(hosts))], Port: 80 + rng.Intn(2)}
			switch rng.Intn(3) {
			case 0:
				delete(v, k)
			default:
				v[k] = Verdict{Reason: []string{"refused", "timeout"}[rng.Intn(2)], Since: time.Unix(int64(rng.Intn(5)), 0)}
			}
			verdicts[src] = v
			s.SetHealth(src, v)
		}
		if s.partsBuilds != before {
			fromParts++
		}

		got := s.State()
		if got.Revision == prev.Revision {
			// Nothing was published. (SetHealth may still have stored verdicts that differ only in time,
			// which it does not publish on their own: a full build would show them, the next state will.)
			continue
		}
		want, _ := s.buildFull(got.Revision, got.Change)
		if !reflect.DeepEqual(got.Upstreams, want.Upstreams) || !reflect.DeepEqual(got.Warnings, want.Warnings) ||
			!reflect.DeepEqual(got.Snippets, want.Snippets) || got.Hash != want.Hash {
			t.Fatalf("seed %d step %d (change %+v): state differs from a full build:\n got  %s %s %s\n want %s %s %s", seed, step,
				got.Change, mustJSON(got.Upstreams), mustJSON(got.Warnings), got.Hash, mustJSON(want.Upstreams), mustJSON(want.Warnings), want.Hash)
		}
		named := map[string]bool{}
		for _, n := range got.Change.Upstreams {
			named[n] = true
		}
		for i := range got.Upstreams {
			u := &got.Upstreams[i]
			if p, ok := prev.Upstream(u.Name); ok && !named[u.Name] && !reflect.DeepEqual(*p, *u) {
				t.Fatalf("seed %d step %d: change %+v does not name upstream %s, which changed:\n %s\n %s", seed, step, got.Change, u.Name, mustJSON(p), mustJSON(u))
			}
		}
	}
	if fromParts < 50 {
		t.Fatalf("seed %d: only %d of 600 states were built from parts: the test does not exercise that path", seed, fromParts)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A configured upstream that won a domain over a discovered one, and then is only discovered, no longer
// has the first claim: the domain goes to the discovered upstream first by name, as a full build says.
func TestDomainWinnerThatLosesItsDefinition(t *testing.T) {
	ctx := context.Background()
	s := newFileStore(t, t.TempDir())
	s.SetDiscovered("consul-catalog", Discovered{
		"a": {Servers: []Server{{Host: "10.0.0.1", Port: 80}}, Domains: []string{"b"}},
		"b": {Servers: []Server{{Host: "10.0.0.2", Port: 80}}},
	})
	if _, err := s.PutUpstream(ctx, Upstream{Name: "b", Servers: []Server{{Host: "10.0.0.3", Port: 80}}}, "admin"); err != nil {
		t.Fatal(err)
	}
	if got := s.State().Names(); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("with b configured, served: %v, want [b]", got)
	}
	if _, err := s.DeleteUpstream(ctx, "b", "admin"); err != nil {
		t.Fatal(err)
	}
	if got := s.State().Names(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("with b only discovered, served: %v, want [a] (first by name)", got)
	}
}
