// Package serve runs dynup's xDS gRPC server: ADS for Envoys and proxyless gRPC clients.
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

// NewGRPCServer returns a gRPC server with ADS registered on c, reporting stream events to callbacks.
//
// Keepalive: the server pings idle streams so that dead Envoys are noticed and their watches released, and
// it tolerates the client pings Envoy and gRPC send (every 30s or more) without closing the connection.
func NewGRPCServer(ctx context.Context, c cache.Cache, callbacks serverv3.Callbacks, extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(1 << 16),
	}, extra...)
	s := grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s, serverv3.NewServer(ctx, c, callbacks))
	return s
}
