// Package serve runs dynup's xDS gRPC server: ADS for Envoys and proxyless gRPC clients, state of the
// world and incremental (delta).
package serve

import (
	"context"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Buffer sizes per connection. An xDS connection is idle almost all the time and a fleet holds thousands,
// so per-connection memory is what counts: gRPC's defaults keep 32 KiB read and 32 KiB write buffers on
// every connection for its whole life. Requests (ACKs) are small; responses are written through a
// write buffer that is returned to a shared pool after each flush (SharedWriteBuffer).
const (
	readBufferSize  = 8 << 10
	writeBufferSize = 32 << 10
)

// NewGRPCServer returns a gRPC server with ADS registered on c, reporting stream events to callbacks.
//
// Keepalive: the server pings idle streams so that dead Envoys are noticed and their watches released, and
// it tolerates the client pings Envoy and gRPC send (every 30s or more) without closing the connection;
// a client pinging more often than every 10s is told to go away (enforcement), so a misconfigured fleet
// cannot keep the server busy with pings.
func NewGRPCServer(ctx context.Context, c cache.Cache, callbacks serverv3.Callbacks, extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(1 << 16),
		grpc.ReadBufferSize(readBufferSize),
		grpc.WriteBufferSize(writeBufferSize),
		grpc.SharedWriteBuffer(true),
		// Fixed flow-control windows turn off gRPC's bandwidth estimation, which answers data with pings:
		// on a stream that gets one response and sends one ACK per change, that doubled the frames and the
		// system calls per change. Nodes only send small requests, so the window costs nothing.
		grpc.InitialWindowSize(1 << 20),
		grpc.InitialConnWindowSize(1 << 20),
		// State-of-the-world requests are decoded by their stream, which knows the one before (see
		// requestDecoder); every other message as gRPC's proto codec would.
		grpc.ForceServerCodecV2(newServerCodec()),
	}, extra...)
	s := grpc.NewServer(opts...)
	// Streams that subscribe to named resources are not sent changes to other resources; the cache says
	// when such a stream is current anyway (groupcache), and rollout tracking must hear it (nodes.Tracker),
	// or it would report every change to other upstreams as pending on proxyless gRPC clients forever.
	if cc, ok := c.(currentReporter); ok {
		if cb, ok := callbacks.(currentListener); ok {
			cc.OnCurrent(cb.Current)
		}
	}
	// State of the world is served by dynup's own loop (sotw.go), incremental by go-control-plane's.
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s, newADSServer(ctx, c, callbacks))
	return s
}

type currentReporter interface {
	OnCurrent(func(req any, typeURL, version string))
}

type currentListener interface {
	Current(req any, typeURL, version string)
}
