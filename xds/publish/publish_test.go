package publish

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/translate"
)

func server(host string) registry.Server { return registry.Server{Host: host, Port: 80} }

func newPublisher(t *testing.T) *Publisher {
	t.Helper()
	p := New(translate.DefaultOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	p.addGroup(translate.Group{Kind: translate.KindEnvoy})
	return p
}

// A state that cannot be translated as a whole keeps the last good snapshot and says why.
func TestFailedTranslationKeepsLastGoodSnapshot(t *testing.T) {
	p := newPublisher(t)
	good := &registry.State{Revision: 1, Hash: "h1", Upstreams: []registry.Upstream{{Name: "a", Servers: []registry.Server{server("10.0.0.1")}}}}
	p.Publish(good)
	snap, ok := p.Cache().Snapshot("envoy")
	if !ok {
		t.Fatal("no snapshot after a good state")
	}
	routes := snap.Version(resource.RouteType)

	// Two upstreams claiming one domain: Envoy would reject the whole route table. The store never lets
	// this through, which is why the publisher must not trust it either.
	bad := &registry.State{Revision: 2, Hash: "h2", Upstreams: []registry.Upstream{
		{Name: "a", Servers: []registry.Server{server("10.0.0.1")}},
		{Name: "b", Domains: []string{"a"}, Servers: []registry.Server{server("10.0.0.2")}},
	}}
	p.Publish(bad)
	snap2, _ := p.Cache().Snapshot("envoy")
	if snap2 != snap || snap2.Version(resource.RouteType) != routes {
		t.Fatal("the snapshot changed after a failed translation")
	}
	st := p.Status()[0]
	if st.Revision != 1 || st.FailedRevision != 2 || !strings.Contains(st.LastError, `domain "a"`) {
		t.Fatalf("status %+v: want revision 1 served, revision 2 failed naming the domain", st)
	}

	// The next good state clears the error.
	p.Publish(&registry.State{Revision: 3, Hash: "h3", Upstreams: good.Upstreams})
	if st := p.Status()[0]; st.Revision != 3 || st.LastError != "" {
		t.Fatalf("status after recovery %+v", st)
	}
}

// An upstream whose own resources are invalid is left out with a warning; the others are served.
func TestInvalidUpstreamIsLeftOutWithAWarning(t *testing.T) {
	p := newPublisher(t)
	p.Publish(&registry.State{Revision: 1, Upstreams: []registry.Upstream{
		{Name: "broken", Servers: []registry.Server{{Host: "", Port: 80}}}, // bypasses registry validation
		{Name: "ok", Servers: []registry.Server{server("10.0.0.1")}},
	}})
	st := p.Status()[0]
	if st.LastError != "" || len(st.Warnings) != 1 || st.Warnings[0].Object != "upstream/broken" {
		t.Fatalf("status %+v: want upstream/broken left out with a warning", st)
	}
	snap, _ := p.Cache().Snapshot("envoy")
	if snap.Size(resource.ClusterType) == 0 {
		t.Fatal("the valid upstream was not served")
	}
}
