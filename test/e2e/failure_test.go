package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dynup/dynup/test/consulagent"
	"github.com/dynup/dynup/test/harness"
)

// Failures dynup meets in production (issue 10): it is killed, Consul goes away, writes come in floods,
// and some nodes stop reading or stop acknowledging. Each test drives real gRPC-Go xDS clients and checks
// that none of their RPCs fail.

// rpcLoad keeps workers sending RPCs on one client until stopped, counting failures.
type rpcLoad struct {
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	sent, failed atomic.Int64
	firstErr     atomic.Value
}

func startLoad(cc *grpc.ClientConn, workers int) *rpcLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &rpcLoad{cancel: cancel}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				if _, err := harness.Who(context.Background(), cc); err != nil {
					l.failed.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
				}
				l.sent.Add(1)
			}
		}()
	}
	return l
}

// waitSent waits until n more RPCs have been sent: the load goes on whatever dynup is doing.
func (l *rpcLoad) waitSent(t *testing.T, n int64) {
	t.Helper()
	from := l.sent.Load()
	harness.Until(t, 30*time.Second, func() error {
		if got := l.sent.Load() - from; got < n {
			return fmt.Errorf("%d of %d RPCs sent", got, n)
		}
		return nil
	})
}

// stop ends the load and fails the test if any RPC failed.
func (l *rpcLoad) stop(t *testing.T, what string) {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if l.failed.Load() != 0 {
		t.Fatalf("%s: %d of %d RPCs failed; first: %v", what, l.failed.Load(), l.sent.Load(), l.firstErr.Load())
	}
	t.Logf("%s: %d RPCs, 0 failed", what, l.sent.Load())
}

// metric reads a metric from dynup's /metrics: its sample, or the sum of its labelled samples.
func metric(t *testing.T, d *harness.Dynup, name string) float64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(d.MustDo(t, http.MethodGet, "/metrics", "")))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		sum, found = sum+f, true
	}
	if !found {
		t.Fatalf("/metrics has no %s", name)
	}
	return sum
}

// liveHeap estimates dynup's live heap: the least heap_alloc over a window of scrapes. Each scrape
// allocates in dynup, so collections happen within the window, and the least value is the heap right
// after one (live objects), not garbage the collector has not reached yet.
func liveHeap(t *testing.T, d *harness.Dynup) float64 {
	t.Helper()
	least := metric(t, d, "go_memstats_heap_alloc_bytes")
	gcs := metric(t, d, "go_gc_duration_seconds_count")
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; ; n++ {
		least = min(least, metric(t, d, "go_memstats_heap_alloc_bytes"))
		if metric(t, d, "go_gc_duration_seconds_count") >= gcs+2 && n >= 20 || time.Now().After(deadline) {
			return least
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// 1. dynup killed (SIGKILL) and restarted on the same ports while clients send RPCs: no RPC fails, the
// client reconnects and is given the same versions back (no churn), and later changes reach it.
func TestKilledAndRestartedUnderLoad(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a, f.b))
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imageinfo", `{"servers":[{"host":"10.0.0.9","port":80,"zone":"b"}],"keepalive":20}`)
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")
	ackedBefore := ackedVersions(t, f.dynup, "client-1")
	var before detail
	f.dynup.GetJSON(t, "/detail", &before)

	load := startLoad(cc, 4)
	load.waitSent(t, 50)
	f.dynup.Kill(t)
	load.waitSent(t, 200) // the client serves from its last config while dynup is gone
	f.dynup.Revive(t)

	var after detail
	f.dynup.GetJSON(t, "/detail", &after)
	if after.Revision != before.Revision || after.Version != before.Version {
		t.Fatalf("after SIGKILL: revision %d version %s, before: %d %s", after.Revision, after.Version, before.Revision, before.Version)
	}
	ackedAfter := ackedVersions(t, f.dynup, "client-1") // waits for the client to reconnect and ACK
	for typ, v := range ackedBefore {
		if ackedAfter[typ] != v {
			t.Errorf("%s: version %s before the kill, %s after", typ, v, ackedAfter[typ])
		}
	}
	var n nodesView
	f.dynup.GetJSON(t, "/nodes", &n)
	if len(n.Nodes) != 1 {
		t.Errorf("after reconnecting, %d nodes are listed, want 1", len(n.Nodes))
	}
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.c))
	waitReachesOnly(t, cc, "C")
	load.stop(t, "SIGKILL and restart")
}

// 2. Consul stopped for a while under load (DYNUP_CONSUL_OUTAGE, default 10s; the figure is 30s:
// DYNUP_CONSUL_OUTAGE=30s go test -race -run TestConsulOutageUnderLoad ./test/e2e): no RPC fails, no node
// is ever sent an empty endpoint set, and changes made after Consul returns (catalog and KV) arrive.
// TestConsulOutageKeepsLastGoodState covers the write refused during the outage.
func TestConsulOutageUnderLoad(t *testing.T) {
	outage := 10 * time.Second
	if v := os.Getenv("DYNUP_CONSUL_OUTAGE"); v != "" {
		var err error
		if outage, err = time.ParseDuration(v); err != nil || outage <= 0 || outage > 5*time.Minute {
			t.Fatalf("DYNUP_CONSUL_OUTAGE=%q: want a duration up to 5m", v)
		}
	}
	agent := consulagent.Start(t, consulagent.Persistent())
	a, b := harness.StartBackend(t, "A"), harness.StartBackend(t, "B")
	register(t, agent, "imgprocess", a, false)
	d := consulDynup(t, agent)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")
	eds := watchEndpoints(t, d.XDSAddr, "envoy-watcher")
	harness.Until(t, 20*time.Second, func() error {
		if eds.last("imgprocess") != 1 {
			return fmt.Errorf("the watcher sees %d endpoints for imgprocess", eds.last("imgprocess"))
		}
		return nil
	})

	load := startLoad(cc, 4)
	agent.Stop(t)
	harness.Until(t, 30*time.Second, func() error {
		var s struct {
			Sources []struct {
				Name      string `json:"name"`
				LastError string `json:"last_error"`
			} `json:"sources"`
		}
		d.GetJSON(t, "/sources", &s)
		for _, src := range s.Sources {
			if strings.HasPrefix(src.Name, "consul-health/") && src.LastError != "" {
				return nil
			}
		}
		return fmt.Errorf("no catalog watch reports an error yet: %+v", s)
	})
	sentBefore := load.sent.Load()
	time.Sleep(outage) // the outage itself: its length is what this test is about
	t.Logf("Consul down for %s after dynup noticed; %d RPCs meanwhile", outage, load.sent.Load()-sentBefore)
	agent.Start(t)

	register(t, agent, "imgprocess", b, false)
	waitReachesOnly(t, cc, "A", "B")
	kv := &api.KVPair{Key: "dynup/upstreams/imgprocess", Value: []byte(`{"domains":["imgprocess","img.example.com"]}`)}
	if _, err := agent.Client(t).KV().Put(kv, nil); err != nil {
		t.Fatal(err)
	}
	other := harness.XDSClient(t, d.XDSAddr, "img.example.com", harness.ClientNode{ID: "client-2"})
	waitReachesOnly(t, other, "A", "B")
	load.stop(t, "Consul outage of "+outage.String())
	harness.Until(t, 20*time.Second, func() error { // the watcher was live all along: it has the new endpoints
		if n := eds.last("imgprocess"); n != 2 {
			return fmt.Errorf("the watcher sees %d endpoints for imgprocess, want 2", n)
		}
		return nil
	})
	if n := eds.empty.Load(); n != 0 {
		t.Fatalf("%d endpoint assignments for imgprocess were sent empty", n)
	}
	t.Logf("%d endpoint assignments observed, none empty", eds.pushes.Load())
}

// endpointWatcher is an Envoy node that ACKs everything and records each endpoint assignment it gets.
type endpointWatcher struct {
	mu     sync.Mutex
	counts map[string]int // cluster → endpoints in the newest assignment
	pushes atomic.Int64
	empty  atomic.Int64 // assignments of imgprocess without a single endpoint
}

func (w *endpointWatcher) last(cluster string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[cluster]
}

func watchEndpoints(t *testing.T, xdsAddr, id string) *endpointWatcher {
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
	node := &core.Node{Id: id, Cluster: "test", UserAgentName: "envoy"}
	w := &endpointWatcher{counts: map[string]int{}}
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			if resp.TypeUrl == resource.EndpointType {
				for _, r := range resp.Resources {
					var cla endpoint.ClusterLoadAssignment
					if r.UnmarshalTo(&cla) != nil {
						continue
					}
					n := 0
					for _, l := range cla.Endpoints {
						n += len(l.LbEndpoints)
					}
					w.pushes.Add(1)
					if cla.ClusterName == "imgprocess" && n == 0 {
						w.empty.Add(1)
					}
					w.mu.Lock()
					w.counts[cla.ClusterName] = n
					w.mu.Unlock()
				}
			}
			if stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}) != nil {
				return
			}
		}
	}()
	return w
}

// 3. A flood of admin writes (1,000, from 10 writers at once) while clients are connected and sending
// RPCs: every write is answered 200 with its own change id, none is lost (the revision moves by exactly
// 1,000 and each upstream holds its writer's last write), the clients end on the last write, and dynup's
// live heap returns near where it was.
func TestAdminWriteFlood(t *testing.T) {
	t.Setenv("GOGC", "25") // dynup collects often, so liveHeap needs few scrapes to see its live heap
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")
	const writers, perWriter = 10, 100
	// Warm up: every upstream exists once, so the base includes what a write leaves in steady state.
	for w := range writers {
		f.dynup.MustDo(t, http.MethodPost, fmt.Sprintf("/upstream/flood-%d", w), floodBody(w, 0))
	}
	var start detail
	f.dynup.GetJSON(t, "/detail", &start)
	base := liveHeap(t, f.dynup)
	load := startLoad(cc, 2)

	var mu sync.Mutex
	ids := map[uint64]bool{}
	var bad atomic.Value
	began := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= perWriter; i++ {
				path, body := fmt.Sprintf("/upstream/flood-%d", w), floodBody(w, i)
				if w == 0 && i == perWriter {
					path, body = "/upstream/imgprocess", serversJSON(f.b) // the clients' upstream, last
				}
				code, resp := f.dynup.Do(t, http.MethodPost, path, body)
				var ans struct {
					Change uint64 `json:"change"`
				}
				if code != http.StatusOK || json.Unmarshal(resp, &ans) != nil || ans.Change == 0 {
					bad.CompareAndSwap(nil, fmt.Sprintf("POST %s: %d %s", path, code, resp))
					return
				}
				mu.Lock()
				ids[ans.Change] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	if b := bad.Load(); b != nil {
		t.Fatalf("a write in the flood failed: %v", b)
	}
	if len(ids) != writers*perWriter {
		t.Fatalf("%d distinct change ids for %d writes", len(ids), writers*perWriter)
	}
	var end detail
	f.dynup.GetJSON(t, "/detail", &end)
	if end.Revision != start.Revision+writers*perWriter {
		t.Fatalf("revision %d → %d: %d changes for %d writes", start.Revision, end.Revision, end.Revision-start.Revision, writers*perWriter)
	}
	for w := range writers {
		last := perWriter
		if w == 0 {
			last = perWriter - 1
		}
		var got struct {
			Servers []struct{ Port int } `json:"servers"`
		}
		f.dynup.GetJSON(t, fmt.Sprintf("/upstream/flood-%d", w), &got)
		if len(got.Servers) == 0 || got.Servers[0].Port != floodPort(w, last) {
			t.Errorf("flood-%d holds %+v, want its last write (port %d)", w, got.Servers, floodPort(w, last))
		}
	}
	waitReachesOnly(t, cc, "B")
	load.stop(t, fmt.Sprintf("%d writes in %s", writers*perWriter, took.Round(time.Millisecond)))

	// Memory: what the flood allocated is garbage once it is over. Keeping every write's state (about
	// 10 KB) or snapshot would cost more than the margin.
	const margin = 8 << 20
	var now float64
	harness.Until(t, 60*time.Second, func() error {
		if now = liveHeap(t, f.dynup); now > base+margin {
			return fmt.Errorf("live heap %s, base %s", mib(now), mib(base))
		}
		return nil
	})
	t.Logf("%d writes in %s; live heap %s before, %s after", writers*perWriter, took.Round(time.Millisecond), mib(base), mib(now))
}

// floodBody is write i of writer w: 20 servers whose port says which write it was.
func floodBody(w, i int) string {
	var b strings.Builder
	b.WriteString(`{"servers":[`)
	for s := range 20 {
		if s > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"host":"10.%d.%d.%d","port":%d}`, w, s/250, s%250+1, floodPort(w, i))
	}
	b.WriteString(`]}`)
	return b.String()
}

func floodPort(w, i int) int { return 1000 + w*1000 + i }

// 4. Nodes that never ACK and nodes that read nothing at all: dynup's live heap stays bounded while the
// state keeps changing, and a healthy Envoy node and a gRPC-Go client get every change as they come.
func TestStuckStreamsHoldNothingBack(t *testing.T) {
	t.Setenv("GOGC", "25") // as in TestAdminWriteFlood
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	f.dynup.MustDo(t, http.MethodPost, "/upstream/big", bigBody(0)) // endpoint assignments larger than a flow-control window
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A")
	healthy := harness.DialADS(t, f.dynup.XDSAddr, "envoy-healthy", "")
	healthy.Subscribe(resource.ClusterType)
	healthy.Subscribe(resource.EndpointType)
	edsVersion := ""
	for edsVersion == "" {
		r := healthy.Next()
		healthy.Ack(r)
		if r.TypeUrl == resource.EndpointType {
			edsVersion = r.VersionInfo
		}
	}

	const stuck = 5
	var unacked []*harness.UnackedADS
	for i := range stuck {
		unacked = append(unacked, harness.DialUnackedADS(t, f.dynup.XDSAddr, fmt.Sprintf("envoy-unacked-%d", i)))
		harness.DialSilentADS(t, f.dynup.XDSAddr, fmt.Sprintf("envoy-silent-%d", i))
	}
	harness.Until(t, 20*time.Second, func() error {
		if n := metric(t, f.dynup, "dynup_xds_streams"); n < 2+2*stuck {
			return fmt.Errorf("%v streams connected, want %d", n, 2+2*stuck)
		}
		for i, u := range unacked {
			if u.Responses() == 0 {
				return fmt.Errorf("unacked node %d has no response yet", i)
			}
		}
		return nil
	})
	base := liveHeap(t, f.dynup)
	load := startLoad(cc, 2)

	const changes = 20
	var slowest time.Duration
	for i := 1; i <= changes; i++ {
		began := time.Now()
		f.dynup.MustDo(t, http.MethodPost, "/upstream/big", bigBody(i))
		for { // the healthy node gets the new endpoints; it ACKs whatever comes first
			r := healthy.Next()
			healthy.Ack(r)
			if r.TypeUrl == resource.EndpointType && r.VersionInfo != edsVersion {
				edsVersion = r.VersionInfo
				break
			}
		}
		slowest = max(slowest, time.Since(began))
		if i%10 == 0 { // and the gRPC client follows its upstream
			next := map[bool]*harness.Backend{true: f.b, false: f.a}[i%20 == 10]
			f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(next))
			waitReachesOnly(t, cc, next.Name)
		}
	}
	load.stop(t, fmt.Sprintf("%d changes with %d stuck nodes", changes, 2*stuck))
	for i, u := range unacked {
		if n := u.Responses(); n > 4 {
			t.Errorf("unacked node %d was sent %d responses: a node that never ACKs is owed one per type", i, n)
		}
	}
	const margin = 12 << 20 // each change is ~80 KB per node; holding them per stuck node would be 16 MB
	var now float64
	harness.Until(t, 60*time.Second, func() error {
		if now = liveHeap(t, f.dynup); now > base+margin {
			return fmt.Errorf("live heap %s, base %s", mib(now), mib(base))
		}
		return nil
	})
	// The unacked nodes answer keepalive pings and stay; a silent node answers nothing, and dynup's
	// keepalive (a ping after 30s idle, 10s to answer) closes its connection once the test runs long enough.
	streams := metric(t, f.dynup, "dynup_xds_streams")
	if streams < 2+stuck {
		t.Errorf("%v streams left, want the healthy and unacked ones (%d) at least", streams, 2+stuck)
	}
	t.Logf("%d changes: slowest reached the healthy node in %s; live heap %s before, %s after; %v of %d streams still open",
		changes, slowest.Round(time.Millisecond), mib(base), mib(now), streams, 2+2*stuck)
}

// bigBody is change i of an upstream of 1,500 servers: about 80 KB of endpoints per node, more than one
// HTTP/2 flow-control window (64 KB), so a silent node's stream really blocks.
func bigBody(i int) string {
	var b strings.Builder
	b.WriteString(`{"servers":[`)
	for s := range 1500 {
		if s > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"host":"10.77.%d.%d","port":%d,"zone":"zone-%d"}`, s/250, s%250+1, 2000+i, s%3)
	}
	b.WriteString(`]}`)
	return b.String()
}
