package harness

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// HealthBackend is a Backend that health checks can probe: on one port it serves the test gRPC service,
// the gRPC health service and, in HTTP/1.1, GET /healthz with a status the test sets. It can be stopped
// (connections closed, the port refuses) and started again on the same port.
type HealthBackend struct {
	*Backend
	// GRPCHealth is the gRPC health service; the overall service ("") starts SERVING.
	GRPCHealth *health.Server
	httpStatus atomic.Int32
	failHalf   atomic.Bool
	grpcSrv    *grpc.Server
	addr       string

	mu  sync.Mutex
	srv *http.Server
}

// StartHealthBackend serves on a free loopback port until the test ends.
func StartHealthBackend(t testing.TB, name string) *HealthBackend {
	t.Helper()
	b := &HealthBackend{Backend: &Backend{Name: name}, GRPCHealth: health.NewServer(), grpcSrv: grpc.NewServer()}
	b.httpStatus.Store(http.StatusOK)
	testgrpc.RegisterTestServiceServer(b.grpcSrv, &halfFailing{b: b})
	healthpb.RegisterHealthServer(b.grpcSrv, b.GRPCHealth)
	b.listen(t, "127.0.0.1:0")
	b.addr = b.lis.Addr().String()
	b.Host, b.Port = "127.0.0.1", b.lis.Addr().(*net.TCPAddr).Port
	t.Cleanup(b.Stop)
	return b
}

func (b *HealthBackend) listen(t testing.TB, addr string) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend %s: listen %s: %v", b.Name, addr, err)
	}
	// gRPC clients speak HTTP/2 without TLS (prior knowledge); HTTP probes speak HTTP/1.1.
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: protocols, Handler: http.HandlerFunc(b.serveHTTP)}
	b.mu.Lock()
	b.srv, b.lis = srv, lis
	b.mu.Unlock()
	go srv.Serve(lis)
}

func (b *HealthBackend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		b.grpcSrv.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/healthz" {
		w.WriteHeader(int(b.httpStatus.Load()))
		return
	}
	http.NotFound(w, r)
}

// Stop closes the port and every connection, as a crashed or stopped server would.
func (b *HealthBackend) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

// Start serves again on the same port.
func (b *HealthBackend) Start(t testing.TB) {
	t.Helper()
	b.listen(t, b.addr)
}

// SetHTTPStatus sets the status GET /healthz answers.
func (b *HealthBackend) SetHTTPStatus(code int) { b.httpStatus.Store(int32(code)) }

// FailHalf makes every second UnaryCall fail with Unavailable.
func (b *HealthBackend) FailHalf(on bool) { b.failHalf.Store(on) }

// halfFailing answers like Backend, failing every second call while FailHalf is on.
type halfFailing struct {
	testgrpc.UnimplementedTestServiceServer
	b *HealthBackend
}

func (h *halfFailing) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if h.b.failHalf.Load() && h.b.calls.Load()%2 == 1 {
		h.b.calls.Add(1)
		return nil, status.Error(codes.Unavailable, h.b.Name+" fails every second call on purpose")
	}
	return h.b.Backend.UnaryCall(ctx, req)
}
