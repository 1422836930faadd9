package harness

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// Backend is a real gRPC server that answers UnaryCall with its own name, so a test sees who answered.
type Backend struct {
	testgrpc.UnimplementedTestServiceServer
	Name  string
	Host  string
	Port  int
	srv   *grpc.Server
	lis   net.Listener
	calls atomic.Int64
	// FailNext, when positive, makes that many calls fail with Unavailable before answering again.
	FailNext atomic.Int64
}

// StartBackend serves on a free loopback port until the test ends.
func StartBackend(t testing.TB, name string) *Backend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{Name: name, lis: lis, srv: grpc.NewServer()}
	b.Host, b.Port = "127.0.0.1", lis.Addr().(*net.TCPAddr).Port
	testgrpc.RegisterTestServiceServer(b.srv, b)
	go b.srv.Serve(lis)
	t.Cleanup(b.srv.Stop)
	return b
}

// Addr is host:port.
func (b *Backend) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// Calls counts the calls this backend answered or failed.
func (b *Backend) Calls() int64 { return b.calls.Load() }

func (b *Backend) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.calls.Add(1)
	if b.FailNext.Load() > 0 && b.FailNext.Add(-1) >= 0 {
		return nil, status.Error(codes.Unavailable, b.Name+" fails on purpose")
	}
	return &testpb.SimpleResponse{Hostname: b.Name, ServerId: b.Name}, nil
}
