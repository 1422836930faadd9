package harness

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// BackendHeader is the response header in which a TrafficBackend names itself on EmptyCall, whose
// response has no field for it.
const BackendHeader = "x-backend"

// TrafficBackend is a real gRPC server for traffic-policy tests: like Backend it answers UnaryCall with
// its name, and the test can also make it hold each UnaryCall (a slow server), fail calls with
// Unavailable, and tell which server answered an EmptyCall (a second method for path routes).
type TrafficBackend struct {
	testgrpc.UnimplementedTestServiceServer
	Name string
	Host string
	Port int
	// Hold is how long UnaryCall waits before answering, as a time.Duration; 0 answers at once.
	Hold atomic.Int64
	// FailNext, when positive, makes that many UnaryCalls fail with Unavailable.
	FailNext atomic.Int64

	calls, failed atomic.Int64
}

// StartTrafficBackend serves on a free loopback port until the test ends.
func StartTrafficBackend(t testing.TB, name string) *TrafficBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &TrafficBackend{Name: name, Host: "127.0.0.1", Port: lis.Addr().(*net.TCPAddr).Port}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, b)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return b
}

// Addr is host:port.
func (b *TrafficBackend) Addr() string { return net.JoinHostPort(b.Host, strconv.Itoa(b.Port)) }

// ServerJSON is the server's entry in an admin API body, with extra fields such as `"weight":2`.
func (b *TrafficBackend) ServerJSON(extra string) string {
	s := fmt.Sprintf(`{"host":%q,"port":%d`, b.Host, b.Port)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

// Calls counts every call this backend received, answered or failed.
func (b *TrafficBackend) Calls() int64 { return b.calls.Load() }

// Failed counts the calls this backend failed on purpose.
func (b *TrafficBackend) Failed() int64 { return b.failed.Load() }

func (b *TrafficBackend) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	b.calls.Add(1)
	if b.FailNext.Load() > 0 && b.FailNext.Add(-1) >= 0 {
		b.failed.Add(1)
		return nil, status.Error(codes.Unavailable, b.Name+" fails on purpose")
	}
	if d := time.Duration(b.Hold.Load()); d > 0 {
		// Holding the request is the behaviour under test (a slow server), not a wait for an event.
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &testpb.SimpleResponse{Hostname: b.Name, ServerId: b.Name}, nil
}

func (b *TrafficBackend) EmptyCall(ctx context.Context, _ *testpb.Empty) (*testpb.Empty, error) {
	b.calls.Add(1)
	if err := grpc.SetHeader(ctx, metadata.Pairs(BackendHeader, b.Name)); err != nil {
		return nil, err
	}
	return &testpb.Empty{}, nil
}

// WhoEmpty sends one EmptyCall and returns the name of the TrafficBackend that answered.
func WhoEmpty(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var header metadata.MD
	if _, err := testgrpc.NewTestServiceClient(cc).EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&header)); err != nil {
		return "", err
	}
	if v := header.Get(BackendHeader); len(v) == 1 {
		return v[0], nil
	}
	return "", fmt.Errorf("the answer to EmptyCall has no %s header", BackendHeader)
}

// WhoWithKey sends one UnaryCall carrying header=value (a hash key) and returns who answered.
func WhoWithKey(ctx context.Context, cc *grpc.ClientConn, header, value string) (string, error) {
	return Who(metadata.AppendToOutgoingContext(ctx, header, value), cc)
}
