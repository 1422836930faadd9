package feedback

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/registry"
)

func startLRS(t *testing.T, f *fixture) (*LRS, lrsv3.LoadReportingServiceClient) {
	t.Helper()
	lrs := NewLRS(f.tr, f.store, 500*time.Millisecond, nil)
	g := grpc.NewServer()
	lrs.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return lrs, lrsv3.NewLoadReportingServiceClient(cc)
}

func open(t *testing.T, c lrsv3.LoadReportingServiceClient, node *core.Node) (grpc.BidiStreamingClient[lrsv3.LoadStatsRequest, lrsv3.LoadStatsResponse], *lrsv3.LoadStatsResponse) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := c.StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

func endpointStats(cluster, host string, port uint32, errors, ok uint64) *lrsv3.LoadStatsRequest {
	return &lrsv3.LoadStatsRequest{ClusterStats: []*endpoint.ClusterStats{{
		ClusterName: cluster,
		UpstreamLocalityStats: []*endpoint.UpstreamLocalityStats{{
			Locality: &core.Locality{},
			UpstreamEndpointStats: []*endpoint.UpstreamEndpointStats{{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port}}}},
				TotalErrorRequests: errors, TotalSuccessfulRequests: ok, TotalIssuedRequests: errors + ok,
			}},
		}},
	}}}
}

func TestLRSReportsFromSeveralNodesTakeAServerOut(t *testing.T) {
	f := newFixture(t)
	f.put(registry.Upstream{Name: "web", Servers: servers("10.0.0.1", "10.0.0.2")})
	lrs, client := startLRS(t, f)
	var streams []grpc.BidiStreamingClient[lrsv3.LoadStatsRequest, lrsv3.LoadStatsResponse]
	for _, id := range []string{"envoy-1", "envoy-2", "envoy-3"} {
		s, resp := open(t, client, &core.Node{Id: id, ClientFeatures: []string{sendAllClustersFeature}})
		if !resp.SendAllClusters || !resp.ReportEndpointGranularity || resp.LoadReportingInterval.AsDuration() != 500*time.Millisecond {
			t.Fatalf("first answer to %s: %v", id, resp)
		}
		streams = append(streams, s)
	}
	for i, s := range streams[:2] {
		if err := s.Send(endpointStats("web", "10.0.0.2", 80, 1, 20)); err != nil {
			t.Fatal(err)
		}
		f.until(func() bool { l, _ := f.tr.Status(); return l.Reports == uint64(i+1) })
	}
	if f.health("web", "10.0.0.2") != nil {
		t.Fatal("2 errors must not take the server out (max_fails 3)")
	}
	// Reports for servers and clusters dynup does not have are ignored.
	streams[2].Send(endpointStats("other", "10.0.0.2", 80, 50, 0))
	streams[2].Send(endpointStats("web", "10.0.0.2", 80, 1, 0))
	f.until(func() bool { h := f.health("web", "10.0.0.2"); return h != nil && h.Source == Source })
	if st := lrs.Status(); st.Streams != 3 || st.Nodes["lrs:envoy-3"].Errors != 51 || st.Nodes["lrs:envoy-1"].Reports != 1 {
		t.Fatalf("LRS status: %+v", st)
	}
}

func TestLRSListsClustersForNodesWithoutSendAll(t *testing.T) {
	f := newFixture(t)
	f.put(registry.Upstream{Name: "b", Servers: servers("10.0.0.1")})
	f.put(registry.Upstream{Name: "a", Servers: servers("10.0.0.1")})
	_, client := startLRS(t, f)
	s, resp := open(t, client, &core.Node{Id: "old-envoy"})
	if resp.SendAllClusters || !slices.Equal(resp.Clusters, []string{"a", "b"}) || !resp.ReportEndpointGranularity {
		t.Fatalf("first answer: %v", resp)
	}
	f.put(registry.Upstream{Name: "c", Servers: servers("10.0.0.1")})
	resp, err := s.Recv()
	if err != nil || !slices.Equal(resp.Clusters, []string{"a", "b", "c"}) {
		t.Fatalf("after adding c: %v %v", resp, err)
	}
}

func TestLRSNeedsTheNode(t *testing.T) {
	f := newFixture(t)
	_, client := startLRS(t, f)
	s, err := client.StreamLoadStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&lrsv3.LoadStatsRequest{})
	if _, err := s.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a first report without a node: %v, want InvalidArgument", err)
	}
}
