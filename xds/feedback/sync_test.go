package feedback

import (
	"context"
	"math/rand"
	"reflect"
	"testing"

	"github.com/dynup/dynup/registry"
)

// A tracker synced state by state, for the upstreams each change names, and now and then after a skipped
// state (all of them), knows the same servers with the same limits as one synced once with the last state;
// and no server it holds out is gone, down or without accounting.
func TestSyncOfChangedUpstreamsEqualsAFullSync(t *testing.T) {
	for seed := int64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewSource(seed))
		fb, err := registry.NewFileBackend(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		store, err := registry.NewStore(context.Background(), fb)
		if err != nil {
			t.Fatal(err)
		}
		tr := New(store, nil)
		names, hosts := []string{"a", "b", "c", "d"}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
		skipped := 0
		for step := 0; step < 300; step++ {
			name := names[rng.Intn(len(names))]
			switch op := rng.Intn(10); {
			case op < 2:
				store.DeleteUpstream(context.Background(), name, "admin")
			case op < 4: // reports: take a server out now and then
				st := store.State()
				if u, ok := st.Upstream(name); ok && len(u.Servers) > 0 {
					srv := u.Servers[rng.Intn(len(u.Servers))]
					tr.Report(Report{Upstream: name, Host: srv.Host, Port: srv.Port, Reporter: "r", Failures: 5})
				}
			default:
				u := registry.Upstream{Name: name}
				for _, h := range hosts {
					if rng.Intn(2) == 0 {
						continue
					}
					srv := registry.Server{Host: h, Port: 80 + rng.Intn(2), Down: rng.Intn(6) == 0}
					if rng.Intn(4) == 0 {
						mf := rng.Intn(2)
						srv.MaxFails = &mf
					}
					u.Servers = append(u.Servers, srv)
				}
				u.Servers = dedupe(u.Servers)
				store.PutUpstream(context.Background(), u, "admin")
			}
			if rng.Intn(5) == 0 {
				skipped++ // as a slow subscriber would: the next sync sees a later state
				continue
			}
			tr.sync(store.State())
		}
		st := store.State()
		tr.sync(st)
		full := New(store, nil)
		full.sync(st)
		if got, want := view(tr), view(full); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: synced change by change:\n%v\nsynced once:\n%v", seed, got, want)
		}
		if !reflect.DeepEqual(upstreamSets(tr), upstreamSets(full)) {
			t.Fatalf("seed %d: upstreams %v, want %v", seed, upstreamSets(tr), upstreamSets(full))
		}
		for k := range tr.out {
			s, ok := tr.servers[k]
			if !ok || s.down || s.passive.Off() {
				t.Fatalf("seed %d: %v is held out but is gone, down or without accounting", seed, k)
			}
		}
		if skipped == 0 {
			t.Fatal("no state was skipped: the full path is not exercised")
		}
	}
}

func dedupe(servers []registry.Server) []registry.Server {
	seen := map[[2]any]bool{}
	var out []registry.Server
	for _, s := range servers {
		if k := [2]any{s.Host, s.Port}; !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}

// view is what a tracker knows of each server: its limits and whether it is down.
func view(t *Tracker) map[registry.ServerKey][2]any {
	out := map[registry.ServerKey][2]any{}
	for k, s := range t.servers {
		out[k] = [2]any{s.passive, s.down}
	}
	return out
}

func upstreamSets(t *Tracker) map[string]map[registry.ServerKey]bool {
	out := map[string]map[registry.ServerKey]bool{}
	for name, keys := range t.upstreams {
		set := map[registry.ServerKey]bool{}
		for _, k := range keys {
			set[k] = true
		}
		out[name] = set
	}
	return out
}
