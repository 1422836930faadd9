package bootstrap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	lrs "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/test/harness"
	"github.com/dynup/dynup/xds/translate"
)

// dynup serves clusters named after upstreams over CDS. Envoy refuses (NACKs) a CDS update that redefines a
// static cluster, so an upstream named like the xDS cluster would stop every cluster update on every Envoy:
// the name must be one no upstream can have.
func TestXDSClusterCannotBeAnUpstream(t *testing.T) {
	if err := registry.ValidateName(XDSCluster); err == nil {
		t.Errorf("%q is a valid upstream name: dynup could serve a cluster that collides with the bootstrap's", XDSCluster)
	}
}

// The cluster that ADS and LRS name leads to dynup serving both: a bootstrap printed for a running dynup
// is followed as Envoy would follow it (its node, its cluster's address), and dynup answers ADS with the
// Envoy resources for that node and accepts the load reports.
func TestADSAndLRSReachDynup(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	d.MustDo(t, "POST", "/upstream/imgprocess", `{"servers":[{"host":"10.0.0.1","port":8080,"zone":"zone-a"}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	b := printFor(t, "--node-id", "serve-test", "--group", "test", "--zone", "zone-a", "--xds-address", d.XDSAddr)
	t.Run("ADS", func(t *testing.T) { checkADS(ctx, t, d, b) })

	// --delta bootstraps use incremental xDS on the same cluster: dynup must answer it the same way.
	t.Run("delta ADS", func(t *testing.T) {
		checkDeltaADS(ctx, t, printFor(t, "--node-id", "serve-test-delta", "--zone", "zone-a", "--xds-address", d.XDSAddr, "--delta"))
	})

	t.Run("LRS", func(t *testing.T) { checkLRS(ctx, t, b) })
}

// printFor runs the command and reads its bootstrap back.
func printFor(t *testing.T, args ...string) *bootstrapv3.Bootstrap {
	t.Helper()
	var out, stderr bytes.Buffer
	if code := Command(args, &out, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := Parse(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkADS follows b's ADS config: dynup must answer its node with the Envoy listener and list it in
// GET /nodes as an Envoy of its zone.
func checkADS(ctx context.Context, t *testing.T, d *harness.Dynup, b *bootstrapv3.Bootstrap) {
	t.Helper()
	cc := dialCluster(t, b, b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&discovery.DiscoveryRequest{Node: b.GetNode(), TypeUrl: resource.ListenerType}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("ADS: %v", err)
	}
	// An Envoy node (dynup.kind: envoy) gets dynup's one HTTP listener, not gRPC's per-host ones.
	var names []string
	for _, r := range resp.GetResources() {
		var l listener.Listener
		if err := r.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		names = append(names, l.GetName())
	}
	if !slices.Equal(names, []string{translate.HTTPListenerName}) {
		t.Errorf("listeners %v, want [%s]: dynup did not take the node for an Envoy", names, translate.HTTPListenerName)
	}
	var nodes struct {
		Nodes []struct {
			ID    string          `json:"id"`
			Group translate.Group `json:"group"`
		} `json:"nodes"`
	}
	d.GetJSON(t, "/nodes", &nodes)
	n := b.GetNode()
	want := translate.Group{Kind: translate.KindEnvoy, Zone: n.GetLocality().GetZone()}
	found := false
	for _, got := range nodes.Nodes {
		found = found || got.ID == n.GetId() && got.Group == want
	}
	if !found {
		t.Errorf("GET /nodes does not list %s as %+v: %+v", n.GetId(), want, nodes)
	}
}

func checkDeltaADS(ctx context.Context, t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads.GetApiType() != core.ApiConfigSource_DELTA_GRPC {
		t.Fatalf("--delta: api_type %v", ads.GetApiType())
	}
	cc := dialCluster(t, b, ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName())
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: b.GetNode(), TypeUrl: resource.ListenerType}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("dynup does not answer delta ADS, which --delta bootstraps use: %v", err)
	}
	var names []string
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	if !slices.Equal(names, []string{translate.HTTPListenerName}) {
		t.Errorf("delta listeners %v, want [%s]", names, translate.HTTPListenerName)
	}
}

// checkLRS follows b's load reporting config: dynup must answer with an interval and ask for endpoint
// granularity.
func checkLRS(ctx context.Context, t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	lrsCluster := b.GetClusterManager().GetLoadStatsConfig().GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName()
	cc := dialCluster(t, b, lrsCluster)
	stream, err := lrs.NewLoadReportingServiceClient(cc).StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	// Envoy's first message: its node, and no stats yet. A server without LRS ends the stream at once:
	// Send then says io.EOF and Recv says why.
	if err := stream.Send(&lrs.LoadStatsRequest{Node: b.GetNode()}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if status.Code(err) == codes.Unimplemented {
		t.Fatalf("dynup does not serve LRS where the bootstrap sends load reports (%s): %v", lrsCluster, err)
	}
	if err != nil {
		t.Fatalf("LRS: %v", err)
	}
	// dynup asks for per-endpoint stats: the load reports then say which server had which failures.
	if !resp.GetReportEndpointGranularity() {
		t.Errorf("LRS response %v does not ask for endpoint granularity", resp)
	}
	if resp.GetLoadReportingInterval() == nil {
		t.Errorf("LRS response %v has no reporting interval", resp)
	}
}

// dialCluster connects to the single endpoint of the named static cluster, as Envoy's gRPC client would:
// over TLS set up from the cluster's transport socket when it has one.
func dialCluster(t *testing.T, b *bootstrapv3.Bootstrap, name string) *grpc.ClientConn {
	t.Helper()
	var cluster *clusterv3.Cluster
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			cluster = c
		}
	}
	if cluster == nil {
		t.Fatalf("no static cluster %q", name)
	}
	addr := cluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	target := net.JoinHostPort(addr.GetAddress(), strconv.Itoa(int(addr.GetPortValue())))
	creds := insecure.NewCredentials()
	if ts := cluster.GetTransportSocket(); ts != nil {
		creds = credentials.NewTLS(envoyTLS(t, ts))
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(fmt.Errorf("dial %s: %w", target, err))
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
