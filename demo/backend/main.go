// Command backend is the demo's upstream server (docker-compose.yml and `make demo-local` run three of
// them): it answers with its own name, so a request through Envoy or a gRPC client shows which server
// answered.
//
// One port serves both protocols, so that one Consul registration (what Registrator makes of one exposed
// port) serves Envoy and proxyless gRPC clients alike:
//   - HTTP/1.1 and HTTP/2 (h2c) requests, any method and path: the name as the body and in X-Backend;
//   - gRPC (grpc.testing.TestService/UnaryCall, the service dynup's tests and demo gateway call): the name
//     as SimpleResponse.hostname and server_id.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	// docker compose stop sends SIGTERM: finish in-flight requests and exit at once rather than being killed
	// after the grace period, so the demo's "stop a backend" step is quick.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// ListeningPrefix starts the line the backend prints once it accepts connections, followed by its address;
// `make demo-local` reads it to register the backend in Consul.
const ListeningPrefix = "listening on "

// run serves until ctx ends and returns the exit status. If ready is not nil it receives the address the
// server listens on, once it accepts connections.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) int {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "address to listen on (HTTP and gRPC)")
	name := fs.String("name", os.Getenv("BACKEND_NAME"), "name to answer with (default $BACKEND_NAME, else the host name)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *name == "" {
		*name, _ = os.Hostname() // a container's host name is its ID: still tells two backends apart
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, testService{name: *name})
	srv := &http.Server{Handler: handler(*name, gs), ReadHeaderTimeout: 10 * time.Second}
	// gRPC clients speak HTTP/2 without TLS from their first byte (prior knowledge); HTTP/1.1 stays on.
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Fprintf(stderr, "backend %s %s%s\n", *name, ListeningPrefix, lis.Addr())
	if ready != nil {
		ready <- lis.Addr().String()
	}
	select {
	case err = <-served:
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx) // waits for in-flight requests, gRPC calls included
	gs.Stop()
	if err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	}
	return 0
}

// handler sends gRPC calls to gs and answers anything else with the name, in the body and in X-Backend.
func handler(name string, gs *grpc.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name+"\n")
	})
}

// testService answers UnaryCall with the backend's name; the other methods stay unimplemented.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (s testService) UnaryCall(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Hostname: s.name, ServerId: s.name}, nil
}
