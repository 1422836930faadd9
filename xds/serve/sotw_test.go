package serve

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	sotwv3 "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/xds/nodes"
	"github.com/dynup/dynup/xds/publish"
	"github.com/dynup/dynup/xds/rollout"
	"github.com/dynup/dynup/xds/translate"
)

// callRecorder passes every callback on to a node tracker and writes it down as a line, to compare what
// two servers report for the same conversation.
type callRecorder struct {
	*nodes.Tracker

	mu       sync.Mutex
	calls    []string
	requests int
	closed   int
	changed  chan struct{} // closed at the next call
}

func newCallRecorder(tr *nodes.Tracker) *callRecorder {
	return &callRecorder{Tracker: tr, changed: make(chan struct{})}
}

func (r *callRecorder) record(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *callRecorder) OnStreamOpen(ctx context.Context, id int64, typeURL string) error {
	r.record("open %d %q", id, typeURL)
	return r.Tracker.OnStreamOpen(ctx, id, typeURL)
}

func (r *callRecorder) OnStreamClosed(id int64, node *core.Node) {
	r.Tracker.OnStreamClosed(id, node)
	r.mu.Lock()
	r.closed++
	r.mu.Unlock()
	r.record("closed %d node=%q", id, node.GetId())
}

func (r *callRecorder) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	err := r.Tracker.OnStreamRequest(id, req)
	r.mu.Lock()
	r.requests++
	r.mu.Unlock()
	r.record("request %d type=%s version=%q nonce=%q names=%v node=%q zone=%q error=%q", id, shortType(req.TypeUrl),
		req.VersionInfo, req.ResponseNonce, req.ResourceNames, req.GetNode().GetId(), req.GetNode().GetLocality().GetZone(),
		req.GetErrorDetail().GetMessage())
	return err
}

func (r *callRecorder) OnStreamResponse(ctx context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	r.Tracker.OnStreamResponse(ctx, id, req, resp)
	r.record("response %d type=%s version=%q nonce=%q resources=%v (to request nonce=%q)", id, shortType(resp.TypeUrl),
		resp.VersionInfo, resp.Nonce, resourceNames(resp), req.ResponseNonce)
}

func (r *callRecorder) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	r.record("delta open %d", id)
	return r.Tracker.OnDeltaStreamOpen(ctx, id, typeURL)
}

func (r *callRecorder) OnDeltaStreamClosed(id int64, node *core.Node) {
	r.Tracker.OnDeltaStreamClosed(id, node)
	r.record("delta closed %d", id)
}

// waitUntil waits until ok holds for the recorder's counts.
func (r *callRecorder) waitUntil(t *testing.T, ok func(requests, closed int) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		done, changed := ok(r.requests, r.closed), r.changed
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("calls so far:\n%s", strings.Join(r.lines(), "\n"))
		}
	}
}

func (r *callRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func shortType(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

func resourceNames(resp *discovery.DiscoveryResponse) []string {
	var out []string
	for _, a := range resp.Resources {
		cla := &endpoint.ClusterLoadAssignment{}
		if a.MessageIs(cla) && a.UnmarshalTo(cla) == nil {
			out = append(out, cla.ClusterName)
			continue
		}
		out = append(out, a.TypeUrl)
	}
	return out
}

// serveRecorded is serve with callbacks recorded, by dynup's server, or by go-control-plane's ordered ADS
// server when reference is set (to compare the two).
func serveRecorded(t *testing.T, reference bool) (*fixture, *callRecorder) {
	t.Helper()
	f := &fixture{t: t, log: &changeLog{}}
	f.rollout = rollout.New(f.log)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.pub = publish.New(translate.DefaultOptions(), logger, f.rollout)
	f.tracker = nodes.NewTracker(f.rollout, logger)
	rec := newCallRecorder(f.tracker)
	ctx, cancel := context.WithCancel(context.Background())
	var s *grpc.Server
	if reference {
		f.pub.Cache().OnCurrent(rec.Current)
		s = grpc.NewServer()
		discovery.RegisterAggregatedDiscoveryServiceServer(s, serverv3.NewServer(ctx, f.pub.Cache(), rec, sotwv3.WithOrderedADS()))
	} else {
		s = NewGRPCServer(ctx, f.pub.Cache(), rec)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(func() { cancel(); s.Stop() })
	f.addr = lis.Addr().String()
	return f, rec
}

// sotwClient is a state-of-the-world ADS stream that sends exactly the requests the test writes.
type sotwClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	cancel context.CancelFunc
	recv   chan *discovery.DiscoveryResponse
}

func dialSotw(t *testing.T, addr string) *sotwClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &sotwClient{t: t, stream: stream, cancel: cancel, recv: make(chan *discovery.DiscoveryResponse, 16)}
	go func() {
		defer close(c.recv)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			c.recv <- r
		}
	}()
	return c
}

func (c *sotwClient) send(r *discovery.DiscoveryRequest) {
	c.t.Helper()
	if err := c.stream.Send(r); err != nil {
		c.t.Fatal(err)
	}
}

func (c *sotwClient) next(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.recv:
		if !ok {
			c.t.Fatal("stream closed")
		}
		if r.TypeUrl != typeURL {
			c.t.Fatalf("got a %s response (%v), want %s", r.TypeUrl, resourceNames(r), typeURL)
		}
		return r
	case <-time.After(20 * time.Second):
		c.t.Fatalf("no %s response within 20s", typeURL)
	}
	return nil
}

func ack(r *discovery.DiscoveryResponse, names ...string) *discovery.DiscoveryRequest {
	return &discovery.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names}
}

func testNode(id string) *core.Node {
	return &core.Node{Id: id, Cluster: "test", UserAgentName: "envoy", Locality: &core.Locality{Zone: "z"}}
}

// converse runs one conversation with a server: the requests an Envoy sends (with its node on the first
// only, then on some), ACKs that keep or change the names, a NACK, a request with a stale nonce, and a
// second stream. It returns every callback the server made, in order.
func converse(t *testing.T, f *fixture, rec *callRecorder) []string {
	f.publish(upstream("a", 80, ""), upstream("b", 80, ""), upstream("c", 80, ""))
	envoy := dialSotw(t, f.addr)
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("envoy-1"), TypeUrl: resource.ClusterType})
	cds := envoy.next(resource.ClusterType)
	envoy.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"a"}})
	eds := envoy.next(resource.EndpointType)
	ackCDS := ack(cds)
	ackCDS.Node = testNode("envoy-1")
	envoy.send(ackCDS)
	envoy.send(ack(eds, "a"))
	envoy.send(ack(eds, "a")) // again: not stale, nothing was sent since
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 5 })

	f.publish(upstream("a", 81, ""), upstream("b", 80, ""), upstream("c", 80, ""))
	eds2 := envoy.next(resource.EndpointType)
	envoy.send(ack(eds2, "a", "b")) // one more name: b is sent
	eds3 := envoy.next(resource.EndpointType)
	nack := ack(eds3, "a", "b")
	nack.VersionInfo = eds2.VersionInfo
	nack.ErrorDetail = &rpcstatus.Status{Code: 3, Message: "rejected by the test"}
	envoy.send(nack)
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 7 })

	f.publish(upstream("a", 81, ""), upstream("b", 82, ""), upstream("c", 80, ""))
	eds4 := envoy.next(resource.EndpointType)
	envoy.send(ack(eds3, "a", "c")) // stale: eds4 was sent since; ignored, c is not sent
	envoy.send(ack(eds4, "c", "b")) // as many names as before, one different: c is sent
	eds5 := envoy.next(resource.EndpointType)
	envoy.send(ack(eds5, "c", "b"))
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 10 })

	second := dialSotw(t, f.addr)
	second.send(&discovery.DiscoveryRequest{Node: testNode("envoy-2"), TypeUrl: resource.ClusterType})
	second.next(resource.ClusterType)
	envoy.cancel()
	rec.waitUntil(t, func(_, closed int) bool { return closed == 1 })
	second.cancel()
	rec.waitUntil(t, func(_, closed int) bool { return closed == 2 })
	return rec.lines()
}

// dynup's server makes the same callbacks as go-control-plane's ordered ADS, in the same order, with the
// same requests and responses, through a conversation that covers what the node tracker relies on.
func TestSotwCallbacksAsGoControlPlane(t *testing.T) {
	reference, referenceCalls := serveRecorded(t, true)
	want := converse(t, reference, referenceCalls)
	f, rec := serveRecorded(t, false)
	got := converse(t, f, rec)
	if !slices.Equal(got, want) {
		t.Fatalf("callbacks:\n%s\n\ngo-control-plane's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// What the comparison relies on having covered.
	for _, s := range []string{
		`open 1 ""`, `open 2 ""`,
		`type=ClusterLoadAssignment version=`, `names=[a b] node="envoy-1" zone="z" error="rejected by the test"`,
		`resources=[b]`, `resources=[c]`, `closed 1 node="envoy-1"`, `closed 2 node="envoy-2"`,
	} {
		if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, s) }) {
			t.Errorf("no call with %q:\n%s", s, strings.Join(got, "\n"))
		}
	}
}

// A request that answers an older response than the latest of its type is ignored: here, one that would
// subscribe to c. The next request is handled, and what it asks for sent.
func TestSotwStaleNonceIgnored(t *testing.T) {
	f, rec := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""), upstream("b", 80, ""), upstream("c", 80, ""))
	envoy := dialSotw(t, f.addr)
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("envoy-1"), TypeUrl: resource.EndpointType, ResourceNames: []string{"a"}})
	eds1 := envoy.next(resource.EndpointType)
	envoy.send(ack(eds1, "a"))
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 2 })
	f.publish(upstream("a", 81, ""), upstream("b", 80, ""), upstream("c", 80, ""))
	eds2 := envoy.next(resource.EndpointType)
	envoy.send(ack(eds1, "a", "c")) // stale
	// Were it not ignored, c would be sent now, before the next request arrives, which would then be stale.
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 3 })
	envoy.send(ack(eds2, "a", "b"))
	if got := resourceNames(envoy.next(resource.EndpointType)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after a stale request for c and a current one for b, sent %v", got)
	}
}

// A stream's requests after the first may leave the node out: the first one's stands for them, for the
// callbacks (the node tracker), for the cache (which serves the node's group) and when the stream closes.
func TestSotwNodeKeptFromFirstRequest(t *testing.T) {
	f, rec := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""))
	envoy := dialSotw(t, f.addr)
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("envoy-1"), TypeUrl: resource.ClusterType})
	cds := envoy.next(resource.ClusterType)
	envoy.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"a"}})
	envoy.send(ack(envoy.next(resource.EndpointType), "a"))
	envoy.send(ack(cds))
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 4 })
	envoy.cancel()
	rec.waitUntil(t, func(_, closed int) bool { return closed == 1 })
	for _, l := range rec.lines() {
		if strings.HasPrefix(l, "request") && !strings.Contains(l, `node="envoy-1" zone="z"`) ||
			strings.HasPrefix(l, "closed") && !strings.Contains(l, `node="envoy-1"`) {
			t.Errorf("without the first request's node: %s", l)
		}
	}
	if groups := f.pub.Cache().Groups(); !slices.Equal(groups, []string{translate.GroupOf(testNode("")).String()}) {
		t.Errorf("groups served %v: a request was served as another node's", groups)
	}
}

// A NACK reaches the callbacks with its error: the node view shows it, with the version rejected.
func TestSotwNackReachesTracker(t *testing.T) {
	f, _ := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""))
	envoy := dialSotw(t, f.addr)
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("envoy-1"), TypeUrl: resource.ClusterType})
	cds := envoy.next(resource.ClusterType)
	envoy.send(ack(cds))
	f.publish(upstream("a", 80, "least_request"))
	cds2 := envoy.next(resource.ClusterType)
	nack := ack(cds2)
	nack.VersionInfo = cds.VersionInfo
	nack.ErrorDetail = &rpcstatus.Status{Code: 3, Message: "rejected by the test"}
	envoy.send(nack)
	waitFor(t, f.tracker, func(n nodes.Node) bool {
		ts := n.Types[resource.ClusterType]
		return ts != nil && ts.LastNack != nil && ts.LastNack.Detail == "rejected by the test" &&
			ts.LastNack.Version == cds2.VersionInfo && ts.AckedVersion == cds.VersionInfo
	})
}

// Responses go out in the order the cache made them: a change to clusters, endpoints and routes reaches a
// stream as clusters, then endpoints, then routes, before the node has ACKed any of them.
func TestSotwResponsesInCacheOrder(t *testing.T) {
	f, rec := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""), upstream("b", 80, ""))
	envoy := dialSotw(t, f.addr)
	types := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}
	for i, typ := range types {
		req := &discovery.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = testNode("envoy-1")
		}
		if typ == resource.EndpointType {
			req.ResourceNames = []string{"a", "b", "c"}
		}
		envoy.send(req)
		envoy.send(ack(envoy.next(typ), req.ResourceNames...))
	}
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 2*len(types) })
	group := translate.GroupOf(testNode("")).String()
	before, _ := f.pub.Cache().Snapshot(group)
	// a's endpoints and policy change, c appears: new clusters, endpoints, routes.
	f.publish(upstream("a", 81, "least_request"), upstream("b", 80, ""), upstream("c", 80, ""))
	var got []string
	receive := func() {
		t.Helper()
		select {
		case r := <-envoy.recv:
			got = append(got, r.TypeUrl)
		case <-time.After(20 * time.Second):
			t.Fatalf("responses so far %v", got)
		}
	}
	receive() // the cache sends while it installs the snapshot: once one came, the snapshot is there
	after, _ := f.pub.Cache().Snapshot(group)
	var want []string
	for _, typ := range types {
		if before.Version(typ) != after.Version(typ) {
			want = append(want, typ)
		}
	}
	if len(want) < 3 {
		t.Fatalf("the change made new versions of %v only", want)
	}
	for len(got) < len(want) {
		receive()
	}
	if !slices.Equal(got, want) {
		t.Fatalf("responses in the order %v, want %v", got, want)
	}
}

// A named subscriber that adds a name is sent that resource; one that swaps a name for another (as many
// names as before) is sent the new one.
func TestSotwNamesChangedUpdateSubscription(t *testing.T) {
	f, _ := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""), upstream("b", 80, ""), upstream("c", 80, ""))
	envoy := dialSotw(t, f.addr)
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("grpc-1"), TypeUrl: resource.EndpointType, ResourceNames: []string{"a"}})
	eds := envoy.next(resource.EndpointType)
	envoy.send(ack(eds, "a", "b"))
	eds = envoy.next(resource.EndpointType)
	if got := resourceNames(eds); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after adding b, sent %v", got)
	}
	envoy.send(ack(eds, "a", "c"))
	if got := resourceNames(envoy.next(resource.EndpointType)); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after swapping b for c, sent %v", got)
	}
}

// watchRecorder is a cache that records the watches it is asked for and answers none.
type watchRecorder struct {
	reqs []*discovery.DiscoveryRequest
	subs []cache.Subscription
}

func (w *watchRecorder) CreateWatch(req *cache.Request, sub cache.Subscription, _ chan cache.Response) (func(), error) {
	w.reqs, w.subs = append(w.reqs, req), append(w.subs, sub)
	return func() {}, nil
}

func (w *watchRecorder) CreateDeltaWatch(*cache.DeltaRequest, cache.Subscription, chan cache.DeltaResponse) (func(), error) {
	return func() {}, nil
}

func (w *watchRecorder) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, nil
}

// An ACK that names the resources the previous request named keeps the subscription (the map of names is
// the same one), and still replaces the watch with one for the new request; different names make a new
// subscription.
func TestSotwSameNamesKeepSubscription(t *testing.T) {
	c := &watchRecorder{}
	s := newADSServer(context.Background(), c, nil)
	sw := &sotwStream{id: 1, watches: map[string]*sotwWatch{}, node: &core.Node{}}
	responses := make(chan cache.Response, 10)
	for _, names := range [][]string{{"a", "b"}, {"a", "b"}, {"a", "c"}, {"a", "c"}} {
		req := &discovery.DiscoveryRequest{Node: testNode("n"), TypeUrl: resource.EndpointType, ResourceNames: slices.Clone(names)}
		if err := s.request(sw, req, responses); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.reqs) != 4 {
		t.Fatalf("%d watches for 4 requests", len(c.reqs))
	}
	set := func(i int) uintptr { return reflect.ValueOf(c.subs[i].SubscribedResources()).Pointer() }
	if set(1) != set(0) || set(3) != set(2) {
		t.Error("an ACK naming the same resources rebuilt the subscription")
	}
	if set(2) == set(1) {
		t.Error("a request naming other resources kept the subscription")
	}
	if got := c.subs[3].SubscribedResources(); len(got) != 2 || !hasKeys(got, "a", "c") {
		t.Errorf("subscribed to %v, want a and c", got)
	}
}

func hasKeys(m map[string]struct{}, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}

// Streams of both protocols are numbered apart, each from 1; the node tracker keeps them apart.
func TestSotwStreamIDsFromOne(t *testing.T) {
	f, rec := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""))
	delta := dialDelta(t, f.addr)
	delta.send(&discovery.DeltaDiscoveryRequest{Node: testNode("delta-1"), TypeUrl: resource.ClusterType})
	delta.ack(delta.next(resource.ClusterType))
	for i := 1; i <= 2; i++ {
		envoy := dialSotw(t, f.addr)
		envoy.send(&discovery.DiscoveryRequest{Node: testNode(fmt.Sprint("sotw-", i)), TypeUrl: resource.ClusterType})
		envoy.send(ack(envoy.next(resource.ClusterType)))
	}
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 4 })
	var opens []string
	for _, l := range rec.lines() {
		if strings.Contains(l, "open") {
			opens = append(opens, l)
		}
	}
	if want := []string{"delta open 1", `open 1 ""`, `open 2 ""`}; !slices.Equal(opens, want) {
		t.Fatalf("streams opened %q, want %q", opens, want)
	}
	streams := map[string]int64{}
	for _, n := range f.tracker.Nodes() {
		streams[n.ID] = n.Stream
	}
	if len(streams) != 3 || streams["sotw-1"] != 1 || streams["sotw-2"] != 2 || streams["delta-1"] != 1 {
		t.Fatalf("tracked streams %v", streams)
	}
}

// fakeResponse is a cache's response to a request.
type fakeResponse struct {
	req  *discovery.DiscoveryRequest
	resp *discovery.DiscoveryResponse
}

func (r fakeResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	return r.resp, nil
}
func (r fakeResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }
func (r fakeResponse) GetVersion() (string, error)             { return r.resp.VersionInfo, nil }
func (r fakeResponse) GetResponseVersion() string              { return r.resp.VersionInfo }
func (r fakeResponse) GetReturnedResources() map[string]string { return nil }
func (r fakeResponse) GetContext() context.Context             { return context.Background() }

// sentRecorder is a server stream that records what is sent on it.
type sentRecorder struct {
	discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	sent []*discovery.DiscoveryResponse
}

func (s *sentRecorder) Send(r *discovery.DiscoveryResponse) error {
	s.sent = append(s.sent, r)
	return nil
}

// Once a response of a type was sent, a request of that type with another nonce is ignored: no new watch;
// the one with the response's nonce replaces the watch. Requests of other types are not affected.
func TestSotwStaleNonceMakesNoWatch(t *testing.T) {
	c := &watchRecorder{}
	s := newADSServer(context.Background(), c, nil)
	out := &sentRecorder{}
	sw := &sotwStream{id: 1, stream: out, watches: map[string]*sotwWatch{}, node: &core.Node{}}
	responses := make(chan cache.Response, 10)
	request := func(typeURL, nonce string) {
		t.Helper()
		req := &discovery.DiscoveryRequest{Node: testNode("n"), TypeUrl: typeURL, ResponseNonce: nonce}
		if err := s.request(sw, req, responses); err != nil {
			t.Fatal(err)
		}
	}
	request(resource.ClusterType, "")
	request(resource.EndpointType, "")
	for range 2 { // the first nonce goes stale when the second response is sent
		if err := s.send(sw, fakeResponse{req: c.reqs[0], resp: &discovery.DiscoveryResponse{TypeUrl: resource.ClusterType}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.sent) != 2 || out.sent[0].Nonce != "1" || out.sent[1].Nonce != "2" {
		t.Fatalf("sent %v", out.sent)
	}
	request(resource.ClusterType, "1")
	request(resource.ClusterType, "")
	if len(c.reqs) != 2 {
		t.Fatalf("requests with a stale nonce made %d watches", len(c.reqs)-2)
	}
	request(resource.EndpointType, "7") // nothing sent of this type: any nonce goes
	request(resource.ClusterType, "2")
	request(resource.ClusterType, "1") // the new watch has sent nothing yet: any nonce goes
	if len(c.reqs) != 5 {
		t.Fatalf("%d watches, want 5", len(c.reqs))
	}
}

// A request replaces its type's watch: a response that watch made and the stream has not sent yet is
// dropped (the new watch answers for the current state), while queued responses of other types are sent.
func TestSotwReplacedWatchDropsItsQueuedResponse(t *testing.T) {
	c := &watchRecorder{}
	s := newADSServer(context.Background(), c, nil)
	out := &sentRecorder{}
	sw := &sotwStream{id: 1, stream: out, watches: map[string]*sotwWatch{}, node: &core.Node{}}
	responses := make(chan cache.Response, 10)
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		if err := s.request(sw, &discovery.DiscoveryRequest{Node: testNode("n"), TypeUrl: typ}, responses); err != nil {
			t.Fatal(err)
		}
	}
	for _, req := range c.reqs {
		responses <- fakeResponse{req: req, resp: &discovery.DiscoveryResponse{TypeUrl: req.TypeUrl}}
	}
	if err := s.request(sw, &discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"a"}}, responses); err != nil {
		t.Fatal(err)
	}
	if len(out.sent) != 1 || out.sent[0].TypeUrl != resource.ClusterType || len(responses) != 0 {
		t.Fatalf("sent %v, %d left queued; want the cluster response sent, the endpoint one dropped", out.sent, len(responses))
	}
}

// The server's context ends its streams: the node sees its stream end, the callbacks see it closed.
func TestSotwServerContextEndsStreams(t *testing.T) {
	f := &fixture{t: t, log: &changeLog{}}
	f.rollout = rollout.New(f.log)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.pub = publish.New(translate.DefaultOptions(), logger, f.rollout)
	rec := newCallRecorder(nodes.NewTracker(f.rollout, logger))
	ctx, cancel := context.WithCancel(context.Background())
	s := NewGRPCServer(ctx, f.pub.Cache(), rec)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	t.Cleanup(func() { cancel(); s.Stop() })
	f.publish(upstream("a", 80, ""))
	envoy := dialSotw(t, lis.Addr().String())
	envoy.send(&discovery.DiscoveryRequest{Node: testNode("envoy-1"), TypeUrl: resource.ClusterType})
	envoy.send(ack(envoy.next(resource.ClusterType)))
	rec.waitUntil(t, func(requests, _ int) bool { return requests == 2 })
	cancel()
	rec.waitUntil(t, func(_, closed int) bool { return closed == 1 })
	select {
	case _, open := <-envoy.recv:
		if open {
			t.Fatal("a response after the server's context ended")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream did not end with the server's context")
	}
}

// ADS needs a type URL on every request: a request without one ends the stream with InvalidArgument.
func TestSotwTypeURLRequired(t *testing.T) {
	f, rec := serveRecorded(t, false)
	f.publish(upstream("a", 80, ""))
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: testNode("envoy-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("the stream ended with %v, want InvalidArgument", err)
	}
	rec.waitUntil(t, func(_, closed int) bool { return closed == 1 })
}
