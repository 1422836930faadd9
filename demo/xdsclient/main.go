// Command xdsclient stands in for Envoy in `make demo-local`: a proxyless gRPC-Go client that gets its
// routes, clusters and endpoints from dynup over xDS, behind a small HTTP front so that the demo's curl
// commands work unchanged.
//
// Each HTTP request becomes one gRPC call (grpc.testing.TestService/UnaryCall, which the demo backends
// answer with their name) on a channel to xds:///<Host header>: the Host picks the upstream, as Envoy's
// virtual hosts do, and gRPC's xDS balancer picks the server from what dynup sent. The answer is the
// backend's name, as the backends give it to Envoy.
//
// It is configured as any gRPC xDS client is: GRPC_XDS_BOOTSTRAP names the bootstrap file (the xDS server
// and this node's id, zone and metadata). Request headers starting with x- become gRPC metadata, so a ring
// hash on a header (x-user) works as it does through Envoy. What it cannot do is what only Envoy does:
// Lua filters, and answering 404 for a host no upstream serves (this answers 503 with gRPC's reason).
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
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	_ "google.golang.org/grpc/xds" // registers the xds:/// resolver and the xDS balancers
)

// ListeningPrefix starts the line printed once the HTTP front accepts connections, followed by its address.
const ListeningPrefix = "listening on "

// maxHosts bounds the channels kept open: every distinct Host header would otherwise open one more.
const maxHosts = 64

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("xdsclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:10000", "address of the HTTP front (Envoy's listener port in the compose demo)")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each gRPC call")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if os.Getenv("GRPC_XDS_BOOTSTRAP") == "" && os.Getenv("GRPC_XDS_BOOTSTRAP_CONFIG") == "" {
		fmt.Fprintln(stderr, "xdsclient: set GRPC_XDS_BOOTSTRAP to a gRPC xDS bootstrap file naming dynup's xDS address")
		return 2
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "xdsclient:", err)
		return 1
	}
	g := &gateway{conns: map[string]*grpc.ClientConn{}, timeout: *timeout}
	defer g.close()
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	fmt.Fprintf(stderr, "xdsclient %s%s\n", ListeningPrefix, lis.Addr())
	select {
	case err = <-served:
		fmt.Fprintln(stderr, "xdsclient:", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintln(stderr, "xdsclient:", err)
		return 1
	}
	return 0
}

// gateway turns HTTP requests into gRPC calls on one xDS channel per Host.
type gateway struct {
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	timeout time.Duration
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h // the port is not part of the upstream's domain, as with Envoy's strip_any_host_port
	}
	if host == "" {
		http.Error(w, "xdsclient: no Host header", http.StatusBadRequest)
		return
	}
	cc, err := g.conn(host)
	if err != nil {
		http.Error(w, "xdsclient: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, forwardedHeaders(r.Header))
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		st := status.Convert(err)
		msg := fmt.Sprintf("xdsclient: %s: %s: %s", host, st.Code(), st.Message())
		if st.Code() == codes.DeadlineExceeded {
			// gRPC waits for the host's listener from xDS; an unknown host gets none (Envoy would say 404).
			msg += " (does an upstream serve this host? GET /list on dynup's admin API)"
		}
		http.Error(w, msg, httpStatus(st.Code()))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Backend", resp.GetHostname())
	io.WriteString(w, resp.GetHostname()+"\n")
}

// conn returns the channel to xds:///host, opening it on first use. Channels stay open: a gRPC channel
// follows every xDS update by itself.
func (g *gateway) conn(host string) (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cc, ok := g.conns[host]; ok {
		return cc, nil
	}
	if len(g.conns) >= maxHosts {
		return nil, fmt.Errorf("already %d hosts open; restart to forget them", maxHosts)
	}
	cc, err := grpc.NewClient("xds:///"+host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	g.conns[host] = cc
	return cc, nil
}

func (g *gateway) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cc := range g.conns {
		cc.Close()
	}
}

// forwardedHeaders are the request's x-* headers as gRPC metadata (header names are already valid keys).
func forwardedHeaders(h http.Header) metadata.MD {
	md := metadata.MD{}
	for name, values := range h {
		if lower := strings.ToLower(name); strings.HasPrefix(lower, "x-") {
			md.Append(lower, values...)
		}
	}
	return md
}

// httpStatus maps a failed call to what a proxy would answer.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}
