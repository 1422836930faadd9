package publish

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/groupcache"
	"github.com/dynup/dynup/xds/translate"
)

var testGroups = []translate.Group{{Kind: translate.KindEnvoy}, {Kind: translate.KindEnvoy, Zone: "z1"},
	{Kind: translate.KindGRPC}, {Kind: translate.KindGRPC, Zone: "z2"}}

// randomUpstream makes upstream i with a mix of the options servers interact with.
func randomUpstream(rng *rand.Rand, i int) registry.Upstream {
	u := registry.Upstream{Name: fmt.Sprintf("u%02d", i)}
	switch i % 4 {
	case 1:
		u.LB = &registry.LoadBalancing{Policy: "least_request"}
	case 2:
		u.LB = &registry.LoadBalancing{Policy: "ring_hash", HashKeys: []registry.HashKey{{Header: "x-user"}}}
	case 3:
		u.Domains = []string{fmt.Sprintf("u%02d.example", i), fmt.Sprintf("alias%02d.example", i)}
		u.Connection = &registry.ConnectionLimits{MaxConnections: 100}
	}
	u.Servers = randomServers(rng, i)
	u.Normalize()
	return u
}

func randomServers(rng *rand.Rand, i int) []registry.Server {
	var out []registry.Server
	for j := 0; j < 1+rng.Intn(4); j++ {
		s := registry.Server{Host: fmt.Sprintf("10.0.%d.%d", i, j+1), Port: 8000 + rng.Intn(3), Weight: rng.Intn(4),
			Zone: []string{"", "z1", "z2"}[rng.Intn(3)], Down: rng.Intn(8) == 0}
		if j > 0 && rng.Intn(4) == 0 {
			s.Level = 1
		}
		out = append(out, s)
	}
	return out
}

func stateOf(rev uint64, ups []registry.Upstream, changed ...string) *registry.State {
	ups = slices.Clone(ups)
	slices.SortFunc(ups, func(a, b registry.Upstream) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return &registry.State{Revision: rev, Hash: fmt.Sprint(rev), Upstreams: ups, Change: registry.Change{Revision: rev, Upstreams: changed}}
}

// The endpoint path gives exactly what a full translation gives, for every kind of group, over a random
// walk of server changes; and it is the path taken.
func TestEndpointPathEqualsFullTranslation(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	ups := make([]registry.Upstream, 12)
	for i := range ups {
		ups[i] = randomUpstream(rng, i)
	}
	p := newPublisher(t)
	for _, g := range testGroups[1:] {
		p.addGroup(g)
	}
	rev := uint64(1)
	p.Publish(stateOf(rev, ups))
	for step := 0; step < 50; step++ {
		var changed []string
		for k := 0; k < 1+rng.Intn(3); k++ {
			i := rng.Intn(len(ups))
			u := ups[i]
			u.Servers = randomServers(rng, i)
			u.Normalize()
			ups[i] = u
			changed = append(changed, u.Name)
		}
		rev++
		if step%10 == 9 {
			rev++ // a skipped (coalesced) state: the change record no longer says everything
		}
		st := stateOf(rev, ups, changed...)
		before := testutil.ToFloat64(publishes.WithLabelValues("endpoints"))
		encodes := groupcache.Encodes()
		p.Publish(st)
		if got := testutil.ToFloat64(publishes.WithLabelValues("endpoints")) - before; got != float64(len(testGroups)) {
			t.Fatalf("step %d: %v of %d groups took the endpoint path", step, got, len(testGroups))
		}
		distinct := len(slices.Compact(slices.Sorted(slices.Values(changed))))
		if got, max := groupcache.Encodes()-encodes, uint64(2*distinct*len(testGroups)); got > max {
			t.Fatalf("step %d: %d encodes for %d changed upstreams in %d groups", step, got, distinct, len(testGroups))
		}
		for _, g := range testGroups {
			served, _ := p.Cache().Snapshot(g.String())
			full, err := p.buildFull(st, g)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
				if served.Version(typ) != full.snap.Version(typ) {
					t.Fatalf("step %d, group %s, %s: endpoint path %s, full translation %s", step, g, typ,
						served.Version(typ), full.snap.Version(typ))
				}
			}
		}
	}
}

// Anything but servers changing takes the full path, and so does an upstream coming or going.
func TestOtherChangesTakeTheFullPath(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	ups := []registry.Upstream{randomUpstream(rng, 0), randomUpstream(rng, 1)}
	p := newPublisher(t)
	p.Publish(stateOf(1, ups))
	full := func(st *registry.State) {
		t.Helper()
		before := testutil.ToFloat64(publishes.WithLabelValues("full"))
		p.Publish(st)
		if testutil.ToFloat64(publishes.WithLabelValues("full")) == before {
			t.Fatalf("revision %d did not take the full path", st.Revision)
		}
	}
	ups[0].Domains = []string{"new.example"}
	full(stateOf(2, ups, ups[0].Name))
	ups = append(ups, randomUpstream(rng, 2))
	full(stateOf(3, ups, ups[2].Name))
	ups = ups[:2]
	full(stateOf(4, ups, "u02"))
	st := stateOf(5, ups)
	st.Snippets = []registry.ActiveSnippet{{}}
	full(st)
}

// A server change that makes an upstream invalid leaves it out with a warning, as a full translation does.
func TestEndpointChangeToInvalidTakesTheFullPath(t *testing.T) {
	ups := []registry.Upstream{{Name: "a", Servers: []registry.Server{server("10.0.0.1")}}, {Name: "b", Servers: []registry.Server{server("10.0.0.2")}}}
	p := newPublisher(t)
	p.Publish(stateOf(1, ups))
	ups[1].Servers = []registry.Server{{Host: "", Port: 80}} // bypasses registry validation
	p.Publish(stateOf(2, ups, "b"))
	st := p.Status()[0]
	if len(st.Warnings) != 1 || st.Warnings[0].Object != "upstream/b" {
		t.Fatalf("warnings %+v, want upstream/b left out", st.Warnings)
	}
	ups[1].Servers = []registry.Server{server("10.0.0.3")}
	p.Publish(stateOf(3, ups, "b"))
	if st := p.Status()[0]; len(st.Warnings) != 0 {
		t.Fatalf("warnings %+v after the fix", st.Warnings)
	}
}
