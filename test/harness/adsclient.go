package harness

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// ADSClient is a simulated Envoy: one ADS stream on which the test decides, response by response, whether
// to ACK or NACK.
type ADSClient struct {
	t      testing.TB
	node   *core.Node
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	recv   chan *discovery.DiscoveryResponse
	// acked remembers the last ACKed version per type, which Envoy sends back with a NACK.
	acked map[string]string
	err   error // why the stream ended, once recv is closed
}

// DialADS opens an ADS stream to dynup as an Envoy node with the given id and zone.
func DialADS(t testing.TB, xdsAddr, id, zone string) *ADSClient {
	t.Helper()
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &ADSClient{t: t, stream: stream, recv: make(chan *discovery.DiscoveryResponse, 64), acked: map[string]string{},
		node: &core.Node{Id: id, Cluster: "test", UserAgentName: "envoy", Locality: &core.Locality{Zone: zone}}}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.err = err
				close(c.recv)
				return
			}
			c.recv <- resp
		}
	}()
	return c
}

// Subscribe sends the first request for a type (no names: wildcard).
func (c *ADSClient) Subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{Node: c.node, TypeUrl: typeURL, ResourceNames: names})
}

// Next waits for the next response.
func (c *ADSClient) Next() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.recv:
		if !ok {
			c.t.Fatal("ADS stream closed")
		}
		return r
	case <-time.After(20 * time.Second):
		c.t.Fatal("no ADS response within 20s")
	}
	return nil
}

// Ack accepts a response.
func (c *ADSClient) Ack(r *discovery.DiscoveryResponse, names ...string) {
	c.t.Helper()
	c.acked[r.TypeUrl] = r.VersionInfo
	c.send(&discovery.DiscoveryRequest{Node: c.node, TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names})
}

// Nack rejects a response with detail, as Envoy does: the previous good version and the rejected nonce.
func (c *ADSClient) Nack(r *discovery.DiscoveryResponse, detail string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{Node: c.node, TypeUrl: r.TypeUrl, VersionInfo: c.acked[r.TypeUrl], ResponseNonce: r.Nonce,
		ResourceNames: names, ErrorDetail: &status.Status{Code: 3, Message: detail}})
}

// Ended waits for dynup to end the stream, skipping responses, and returns the status it ended with.
func (c *ADSClient) Ended() error {
	c.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case _, ok := <-c.recv:
			if !ok {
				return c.err
			}
		case <-timeout:
			c.t.Fatal("the ADS stream did not end within 20s")
		}
	}
}

func (c *ADSClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	// io.EOF means the stream has ended: Next and Ended report how.
	if err := c.stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		c.t.Fatal(err)
	}
}
