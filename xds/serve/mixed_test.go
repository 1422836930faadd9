package serve

import (
	"fmt"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/test/harness"
)

// go-control-plane numbers state-of-the-world and incremental streams separately, both from 1. A fleet
// with both kinds must still show each stream as its own node, each with its own ACKs.
func TestSotwAndDeltaStreamsAreTrackedApart(t *testing.T) {
	f := serve(t)
	f.publish(upstream("a", 80, ""))

	delta := dialDelta(t, f.addr)
	delta.send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: "envoy-delta", UserAgentName: "envoy"}, TypeUrl: resource.ClusterType})
	delta.ack(delta.next(resource.ClusterType))
	sotw := harness.DialADS(t, f.addr, "envoy-sotw", "")
	sotw.Subscribe(resource.ClusterType)
	sotw.Ack(sotw.Next())

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
// while the cache holds its lock. The stream that asks for one too many is ended.
func TestStreamAskingForTooManyTypesIsEnded(t *testing.T) {
	f := serve(t)
	f.publish(upstream("a", 80, ""))
	greedy := harness.DialADS(t, f.addr, "greedy", "")
	for i := 0; i <= 10; i++ {
		greedy.Subscribe(fmt.Sprintf("type.example.com/made.up.T%d", i))
	}
	if err := greedy.Ended(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("the stream ended with %v, want InvalidArgument", err)
	}
}
