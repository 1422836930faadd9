package groupcache

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// benchResources is a group's resources: n clusters with one endpoint each, one listener, one route table.
// Endpoint port gen marks a change of the first cluster's endpoints.
func benchResources(n int, gen uint32) map[string][]types.Resource {
	res := map[string][]types.Resource{
		resource.ListenerType: {&listener.Listener{Name: "http"}},
		resource.RouteType:    {&route.RouteConfiguration{Name: "http"}},
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%05d", i)
		port := uint32(8080)
		if i == 0 {
			port += gen
		}
		res[resource.ClusterType] = append(res[resource.ClusterType], &cluster.Cluster{Name: name, ConnectTimeout: durationpb.New(1)})
		res[resource.EndpointType] = append(res[resource.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{
				Endpoint: &endpoint.Endpoint{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: "10.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}}}}}}}}})
	}
	return res
}

// benchStream is one simulated Envoy ADS stream as go-control-plane's server drives the cache: one watch
// per type, the subscription remembering what was sent.
type benchStream struct {
	ch   chan cache.Response
	subs map[string]*stream.Subscription
	reqs map[string]*cache.Request
}

var benchNode = &core.Node{Id: "bench", UserAgentName: "envoy"}

// BenchmarkSetSnapshotFanout measures installing a snapshot in which one endpoint changed while streams of the
// group have a parked watch for each type: the per-change cost in the cache, which must stay small per stream.
func BenchmarkSetSnapshotFanout(b *testing.B) {
	const clusters = 100
	for _, streams := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			c := New(func(*core.Node) string { return "envoy" }, nil)
			snaps := make([]*Snapshot, 2)
			for g := range snaps {
				s, err := NewSnapshot(benchResources(clusters, uint32(g+1)))
				if err != nil {
					b.Fatal(err)
				}
				snaps[g] = s
			}
			c.SetSnapshot("envoy", snaps[0])
			var names []string
			for i := 0; i < clusters; i++ {
				names = append(names, fmt.Sprintf("svc-%05d", i))
			}
			subscribe := map[string][]string{resource.ClusterType: nil, resource.ListenerType: nil,
				resource.EndpointType: names, resource.RouteType: {"http"}}
			all := make([]*benchStream, streams)
			for i := range all {
				s := &benchStream{ch: make(chan cache.Response, 8), subs: map[string]*stream.Subscription{}, reqs: map[string]*cache.Request{}}
				for typ, ns := range subscribe {
					sub := stream.NewSotwSubscription(ns, true)
					s.subs[typ] = &sub
					req := &cache.Request{Node: benchNode, TypeUrl: typ, ResourceNames: ns}
					if _, err := c.CreateWatch(req, s.subs[typ], s.ch); err != nil {
						b.Fatal(err)
					}
				}
				all[i] = s
			}
			drain := func() int {
				sent := 0
				for _, s := range all {
					for {
						select {
						case r := <-s.ch:
							sent++
							out, _ := r.GetDiscoveryResponse()
							s.subs[out.TypeUrl].SetReturnedResources(r.GetReturnedResources())
							req := &cache.Request{Node: benchNode, TypeUrl: out.TypeUrl, VersionInfo: out.VersionInfo, ResponseNonce: "n",
								ResourceNames: subscribe[out.TypeUrl]}
							s.subs[out.TypeUrl].SetResourceSubscription(req.ResourceNames)
							if _, err := c.CreateWatch(req, s.subs[out.TypeUrl], s.ch); err != nil {
								b.Fatal(err)
							}
							continue
						default:
						}
						break
					}
				}
				return sent
			}
			drain()
			b.ReportAllocs()
			b.ResetTimer()
			sent := 0
			var inSet, cpu time.Duration
			for i := 0; i < b.N; i++ {
				began, cpu0 := time.Now(), processCPU()
				c.SetSnapshot("envoy", snaps[(i+1)%2])
				inSet += time.Since(began)
				cpu += processCPU() - cpu0
				b.StopTimer()
				sent += drain()
				b.StartTimer()
			}
			b.ReportMetric(float64(sent)/float64(b.N)/float64(streams), "responses/stream/op")
			b.ReportMetric(float64(inSet.Microseconds())/1000/float64(b.N), "wall-ms/op")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
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
