package harness

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"
)

// ClientNode is how a test gRPC client describes itself to dynup.
type ClientNode struct {
	ID   string
	Zone string
}

// Bootstrap is the gRPC xDS bootstrap JSON for a client of dynup at xdsAddr.
func Bootstrap(xdsAddr string, node ClientNode) []byte {
	b, _ := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{"id": node.ID, "cluster": "test", "locality": map[string]any{"zone": node.Zone}},
	})
	return b
}

// XDSClient opens a channel to xds:///target through gRPC-Go's own xDS resolver and balancers.
func XDSClient(t testing.TB, xdsAddr, target string, node ClientNode) *grpc.ClientConn {
	t.Helper()
	builder, err := xds.NewXDSResolverWithConfigForTesting(Bootstrap(xdsAddr, node))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Who sends one RPC and returns the name of the backend that answered.
func Who(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testpb.SimpleRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetHostname(), nil
}

// Until retries check until it returns nil or the deadline passes, then fails the test with the last error.
// It is for waiting on something a real component does asynchronously (a push reaching a client).
func Until(t testing.TB, within time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
