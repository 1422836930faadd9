package serve

import (
	"context"
	"fmt"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// go-control-plane numbers state-of-the-world and incremental streams separately, both from 1. A fleet
// with both kinds must still show each stream as its own node, each with its own ACKs.
func TestSotwAndDeltaStreamsAreTrackedApart(t *testing.T) {
	f := serve(t)
	f.publish(upstream("a", 80, ""))

	delta := dialDelta(t, f.addr)
	delta.send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: "envoy-delta", UserAgentName: "envoy"}, TypeUrl: resource.ClusterType})
	delta.ack(delta.next(resource.ClusterType))

	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	sotw, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "envoy-sotw", UserAgentName: "envoy"}
	if err := sotw.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := sotw.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}

	deadline := time.After(20 * time.Second)
	for {
		changed := f.tracker.Changed()
		acked := map[string]string{}
		for _, n := range f.tracker.Nodes() {
			if ts := n.Types[resource.ClusterType]; ts != nil && ts.AckedVersion != "" {
				acked[n.ID] = n.Protocol
			}
		}
		if len(acked) == 2 && acked["envoy-delta"] == "delta" && acked["envoy-sotw"] == "sotw" {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("nodes: %+v", f.tracker.Nodes())
		}
	}
}

// A stream may ask for a bounded number of resource types: more could fill the queue its responses wait in
// while the cache holds its lock. The stream that asks for one too many is ended; others are served.
func TestStreamAskingForTooManyTypesIsEnded(t *testing.T) {
	f := serve(t)
	f.publish(upstream("a", 80, ""))
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "greedy", UserAgentName: "envoy"}
	for i := 0; i <= 10; i++ {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: fmt.Sprintf("type.example.com/made.up.T%d", i)}); err != nil {
			break
		}
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("the stream ended with %v, want InvalidArgument", err)
			}
			return
		}
	}
}
