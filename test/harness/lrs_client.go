package harness

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// LRSClient is a simulated Envoy load reporter: one LRS stream on dynup's xDS port, as Envoy opens it from
// its bootstrap's load_stats_config. The test decides what each report says.
type LRSClient struct {
	t      testing.TB
	stream grpc.BidiStreamingClient[lrsv3.LoadStatsRequest, lrsv3.LoadStatsResponse]
	// First is dynup's answer to the node's first message: what to report and how often.
	First *lrsv3.LoadStatsResponse
}

// DialLRS opens an LRS stream as the Envoy node id, advertising what Envoy advertises (send_all_clusters),
// and reads dynup's first answer.
func DialLRS(t testing.TB, xdsAddr, id string) *LRSClient {
	t.Helper()
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := lrsv3.NewLoadReportingServiceClient(cc).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: id, Cluster: "test", UserAgentName: "envoy", ClientFeatures: []string{"envoy.lrs.supports_send_all_clusters"}}
	if err := stream.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
		t.Fatal(err)
	}
	first := make(chan *lrsv3.LoadStatsResponse, 1)
	errs := make(chan error, 1)
	go func() {
		resp, err := stream.Recv()
		if err != nil {
			errs <- err
			return
		}
		first <- resp
	}()
	c := &LRSClient{t: t, stream: stream}
	select {
	case c.First = <-first:
	case err := <-errs:
		t.Fatalf("LRS %s: first answer: %v", id, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("LRS %s: no first answer within 20s", id)
	}
	return c
}

// EndpointLoad is one endpoint's counts for one report.
type EndpointLoad struct {
	Host      string
	Port      int
	Errors    uint64
	Successes uint64
}

// Report sends one load report for cluster with per-endpoint stats, as Envoy does when asked for endpoint
// granularity: the totals also appear per locality.
func (c *LRSClient) Report(cluster string, interval time.Duration, loads ...EndpointLoad) {
	c.t.Helper()
	loc := &endpoint.UpstreamLocalityStats{Locality: &core.Locality{}}
	for _, l := range loads {
		loc.TotalErrorRequests += l.Errors
		loc.TotalSuccessfulRequests += l.Successes
		loc.TotalIssuedRequests += l.Errors + l.Successes
		loc.UpstreamEndpointStats = append(loc.UpstreamEndpointStats, &endpoint.UpstreamEndpointStats{
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: l.Host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(l.Port)}}}},
			TotalErrorRequests:      l.Errors,
			TotalSuccessfulRequests: l.Successes,
			TotalIssuedRequests:     l.Errors + l.Successes,
		})
	}
	req := &lrsv3.LoadStatsRequest{ClusterStats: []*endpoint.ClusterStats{{
		ClusterName:           cluster,
		UpstreamLocalityStats: []*endpoint.UpstreamLocalityStats{loc},
		LoadReportInterval:    durationpb.New(interval),
	}}}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("LRS report: %v", err)
	}
}
