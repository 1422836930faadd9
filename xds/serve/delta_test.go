package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/translate"
)

// changeLog is the store's change history, as much of it as rollout tracking needs.
type changeLog struct {
	mu      sync.Mutex
	changes []registry.Change
}

func (l *changeLog) Changes(from, to uint64) []registry.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []registry.Change
	for _, c := range l.changes {
		if c.Revision > from && (to == 0 || c.Revision <= to) {
			out = append(out, c)
		}
	}
	return out
}

// fixture is dynup's serving side on a loopback port: publisher, node and rollout tracking, gRPC server.
type fixture struct {
	t       *testing.T
	pub     *publish.Publisher
	tracker *nodes.Tracker
	rollout *rollout.Tracker
	log     *changeLog
	addr    string
	rev     uint64
}

func serve(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, log: &changeLog{}}
	ro := rollout.New(f.log)
	f.rollout = ro
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.pub = publish.New(translate.DefaultOptions(), logger, ro)
	f.tracker = nodes.NewTracker(ro, logger)
	ctx, cancel := context.WithCancel(context.Background())
	s := NewGRPCServer(ctx, f.pub.Cache(), f.tracker)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(func() { cancel(); s.Stop() })
	f.addr = lis.Addr().String()
	return f
}

// publish makes a new revision of the given upstreams.
func (f *fixture) publish(ups ...registry.Upstream) {
	f.rev++
	c := registry.Change{Revision: f.rev, AcceptedAt: time.Now()}
	for _, u := range ups {
		c.Upstreams = append(c.Upstreams, u.Name)
	}
	f.log.mu.Lock()
	f.log.changes = append(f.log.changes, c)
	f.log.mu.Unlock()
	f.pub.Publish(&registry.State{Revision: f.rev, Hash: "h", Upstreams: ups, Change: c})
}

func upstream(name string, port int, policy string) registry.Upstream {
	u := registry.Upstream{Name: name, Servers: []registry.Server{{Host: "10.0.0.1", Port: port}}}
	if policy != "" {
		u.LB = &registry.LoadBalancing{Policy: policy}
	}
	return u
}

// deltaStream is an Envoy speaking incremental ADS.
type deltaStream struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	recv   chan *discovery.DeltaDiscoveryResponse
}

func dialDelta(t *testing.T, addr string) *deltaStream {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := &deltaStream{t: t, stream: stream, recv: make(chan *discovery.DeltaDiscoveryResponse, 16)}
	go func() {
		defer close(d.recv)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			d.recv <- r
		}
	}()
	return d
}

func (d *deltaStream) send(r *discovery.DeltaDiscoveryRequest) {
	d.t.Helper()
	if err := d.stream.Send(r); err != nil {
		d.t.Fatal(err)
	}
}

func (d *deltaStream) next(typeURL string) *discovery.DeltaDiscoveryResponse {
	d.t.Helper()
	select {
	case r, ok := <-d.recv:
		if !ok {
			d.t.Fatal("stream closed")
		}
		if r.TypeUrl != typeURL {
			d.t.Fatalf("got a %s response, want %s", r.TypeUrl, typeURL)
		}
		return r
	case <-time.After(20 * time.Second):
		d.t.Fatalf("no %s response within 20s", typeURL)
	}
	return nil
}

func (d *deltaStream) ack(r *discovery.DeltaDiscoveryResponse) {
	d.t.Helper()
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce})
}

func names(r *discovery.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.Resources {
		out = append(out, res.Name)
	}
	return out
}

// An Envoy on incremental ADS gets its clusters and endpoints, then only the assignment that changed and
// no clusters; a cluster change sends that cluster alone. Its ACKs and NACKs show on /nodes.
func TestDeltaADS(t *testing.T) {
	f := serve(t)
	f.publish(upstream("a", 80, ""), upstream("b", 80, ""))
	envoy := dialDelta(t, f.addr)
	envoy.send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: "envoy-1", UserAgentName: "envoy"}, TypeUrl: resource.ClusterType})
	cds := envoy.next(resource.ClusterType)
	if got := names(cds); len(got) != 2 {
		t.Fatalf("clusters %v", got)
	}
	envoy.ack(cds)
	envoy.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"a", "b"}})
	envoy.ack(envoy.next(resource.EndpointType))

	f.publish(upstream("a", 81, ""), upstream("b", 80, "")) // an endpoint change
	eds := envoy.next(resource.EndpointType)
	if got := names(eds); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after a's endpoint changed, endpoints %v were sent", got)
	}
	envoy.ack(eds)

	// Had the endpoint change sent clusters, that response would come before this one.
	f.publish(upstream("a", 81, "least_request"), upstream("b", 80, ""))
	cds2 := envoy.next(resource.ClusterType)
	if got := names(cds2); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after a's policy changed, clusters %v were sent", got)
	}
	c := &cluster.Cluster{}
	if err := cds2.Resources[0].Resource.UnmarshalTo(c); err != nil || c.LbPolicy != cluster.Cluster_LEAST_REQUEST {
		t.Fatalf("cluster a: %v %v", c.LbPolicy, err)
	}
	envoy.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: cds2.Nonce,
		ErrorDetail: &status.Status{Code: 3, Message: "rejected by the test"}})

	waitFor(t, f.tracker, func(n nodes.Node) bool {
		cdsState, edsState := n.Types[resource.ClusterType], n.Types[resource.EndpointType]
		return n.Protocol == "delta" && cdsState != nil && cdsState.LastNack != nil &&
			cdsState.LastNack.Detail == "rejected by the test" && cdsState.AckedVersion == cds.SystemVersionInfo &&
			edsState != nil && edsState.AckedVersion == eds.SystemVersionInfo
	})
}

// waitFor waits until the tracker's only node satisfies ok.
func waitFor(t *testing.T, tr *nodes.Tracker, ok func(nodes.Node) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := tr.Changed()
		if ns := tr.Nodes(); len(ns) == 1 && ok(ns[0]) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("nodes: %+v", tr.Nodes())
		}
	}
}
