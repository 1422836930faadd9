package publish

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/groupcache"
	"github.com/dynup/dynup/xds/translate"
)

// benchState is n upstreams of `servers` servers each, spread over two zones.
func benchState(upstreams, servers int) *registry.State {
	st := &registry.State{Revision: 1, Hash: "h1", Change: registry.Change{Revision: 1}}
	for i := 0; i < upstreams; i++ {
		u := registry.Upstream{Name: fmt.Sprintf("svc-%05d", i)}
		for j := 0; j < servers; j++ {
			u.Servers = append(u.Servers, registry.Server{Host: fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j+1), Port: 8080,
				Zone: []string{"a", "b"}[j%2]})
		}
		st.Upstreams = append(st.Upstreams, u)
		st.Change.Upstreams = append(st.Change.Upstreams, u.Name)
	}
	return st
}

func benchPublisher(groups ...translate.Group) *Publisher {
	p := New(translate.DefaultOptions(), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	for _, g := range groups {
		p.addGroup(g)
	}
	return p
}

// processCPU is the CPU time (user and system, all threads) the process used so far. Benchmarks report it
// next to wall time because a shared machine's load inflates wall time much more than CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter reports CPU time and resources encoded per operation next to ns/op.
type meter struct {
	b       *testing.B
	cpu     time.Duration
	encodes uint64
}

func startMeter(b *testing.B) *meter {
	runtime.GC() // the setup's garbage is not the operation's
	b.ReportAllocs()
	b.ResetTimer()
	return &meter{b: b, cpu: processCPU(), encodes: groupcache.Encodes()}
}

func (m *meter) stop() {
	m.b.StopTimer()
	n := float64(m.b.N)
	m.b.ReportMetric(float64((processCPU()-m.cpu).Microseconds())/1000/n, "cpu-ms/op")
	m.b.ReportMetric(float64(groupcache.Encodes()-m.encodes)/n, "encodes/op")
}

var benchGroups = map[string][]translate.Group{
	"groups=1": {{Kind: translate.KindEnvoy}},
	"groups=3": {{Kind: translate.KindEnvoy, Zone: "a"}, {Kind: translate.KindEnvoy, Zone: "b"}, {Kind: translate.KindGRPC}},
}

// BenchmarkPublishFull is B4's first half: translating and publishing 10,000 upstreams of 10 servers from
// scratch (a restart, or a change of something every resource depends on).
func BenchmarkPublishFull(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, gs := range []string{"groups=1", "groups=3"} {
			b.Run(fmt.Sprintf("upstreams=%d/%s", n, gs), func(b *testing.B) {
				st := benchState(n, 10)
				m := startMeter(b)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					p := benchPublisher(benchGroups[gs]...) // nothing to start from: a full translation
					b.StartTimer()
					p.Publish(st)
				}
				m.stop()
			})
		}
	}
}

// BenchmarkPublishEndpointChange is B4's second half: one server of one upstream changes.
func BenchmarkPublishEndpointChange(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, gs := range []string{"groups=1", "groups=3"} {
			b.Run(fmt.Sprintf("upstreams=%d/%s", n, gs), func(b *testing.B) {
				st := benchState(n, 10)
				p := benchPublisher(benchGroups[gs]...)
				p.Publish(st)
				m := startMeter(b)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					next := *st
					next.Upstreams = append([]registry.Upstream(nil), st.Upstreams...)
					k := i % n
					u := next.Upstreams[k]
					u.Servers = append([]registry.Server(nil), u.Servers...)
					u.Servers[0].Port = 9000 + i%1000
					next.Upstreams[k] = u
					next.Revision = st.Revision + 1
					next.Change = registry.Change{Revision: next.Revision, Upstreams: []string{u.Name}}
					st = &next
					b.StartTimer()
					p.Publish(st)
				}
				m.stop()
			})
		}
	}
}

// BenchmarkFullParts splits a full publish of 10,000 upstreams into its two parts: translation (with
// validation, in xds/translate) and encoding into a snapshot (xds/groupcache).
func BenchmarkFullParts(b *testing.B) {
	st := benchState(10000, 10)
	g := translate.Group{Kind: translate.KindEnvoy}
	b.Run("translate", func(b *testing.B) {
		m := startMeter(b)
		for i := 0; i < b.N; i++ {
			if _, err := translate.Translate(st, g, translate.DefaultOptions()); err != nil {
				b.Fatal(err)
			}
		}
		m.stop()
	})
	b.Run("encode", func(b *testing.B) {
		res, err := translate.Translate(st, g, translate.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		m := startMeter(b)
		for i := 0; i < b.N; i++ {
			if _, err := groupcache.NewSnapshot(map[string][]types.Resource{
				resource.ClusterType:  asResources(res.Clusters),
				resource.EndpointType: asResources(res.Endpoints),
				resource.ListenerType: asResources(res.Listeners),
				resource.RouteType:    asResources(res.Routes),
			}); err != nil {
				b.Fatal(err)
			}
		}
		m.stop()
	})
}
