package harness

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Stuck nodes: Envoys that misbehave in the two ways a control plane must survive without slowing the
// rest of the fleet or growing without bound. Both subscribe like Envoy (every type, wildcard).

// wildcardTypes are the types an Envoy subscribes to, in its order.
var wildcardTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

func envoyNode(id string) *core.Node {
	return &core.Node{Id: id, Cluster: "test", UserAgentName: "envoy"}
}

// UnackedADS is a node that reads every response and never ACKs one, like an Envoy wedged after
// applying its first config. The protocol lets the server send it nothing more.
type UnackedADS struct {
	responses atomic.Int64
}

// DialUnackedADS opens such a stream; it lives until the test ends.
func DialUnackedADS(t testing.TB, xdsAddr, id string) *UnackedADS {
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
	for _, typ := range wildcardTypes {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: envoyNode(id), TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	u := &UnackedADS{}
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				return
			}
			u.responses.Add(1)
		}
	}()
	return u
}

// Responses counts what the stream received.
func (u *UnackedADS) Responses() int64 { return u.responses.Load() }

// DialSilentADS opens an ADS stream over a raw HTTP/2 connection, subscribes to every type, and never reads
// a byte from the socket again: an Envoy whose event loop hangs. The server's writes back up into the
// socket and the stream's flow-control window, never into the client. It lives until the test ends.
func DialSilentADS(t testing.TB, xdsAddr, id string) {
	t.Helper()
	conn, err := net.Dial("tcp", xdsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, nil) // never reads
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", xdsAddr},
		{":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const stream = 1
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range wildcardTypes {
		msg, err := proto.Marshal(&discovery.DiscoveryRequest{Node: envoyNode(id), TypeUrl: typ})
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, 5+len(msg)) // gRPC message framing: not compressed, length, message
		binary.BigEndian.PutUint32(frame[1:5], uint32(len(msg)))
		copy(frame[5:], msg)
		if err := fr.WriteData(stream, false, frame); err != nil {
			t.Fatal(err)
		}
	}
}
