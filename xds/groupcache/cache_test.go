package groupcache

import (
	"bytes"
	"slices"
	"sort"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// snap builds a snapshot with the named listeners, clusters, endpoints and routes; a name's suffix after
// "@" changes the resource's content (so its version) without changing its name.
func snap(t *testing.T, listeners, clusters []string) *Snapshot {
	t.Helper()
	res := map[string][]types.Resource{}
	for _, l := range listeners {
		name, stat := splitName(l)
		res[resource.ListenerType] = append(res[resource.ListenerType], &listener.Listener{Name: name, StatPrefix: stat})
		res[resource.RouteType] = append(res[resource.RouteType], &route.RouteConfiguration{Name: name,
			VirtualHosts: []*route.VirtualHost{{Name: stat}}})
	}
	for _, c := range clusters {
		name, stat := splitName(c)
		res[resource.ClusterType] = append(res[resource.ClusterType], &cluster.Cluster{Name: name, AltStatName: stat, ConnectTimeout: durationpb.New(1)})
		res[resource.EndpointType] = append(res[resource.EndpointType], &endpoint.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Zone: stat}}}})
	}
	s, err := NewSnapshot(res)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func splitName(s string) (string, string) {
	for i := range s {
		if s[i] == '@' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

var grpcNode = &core.Node{Id: "n1", UserAgentName: "gRPC Go"}

func newCache(missing func(string, *core.Node)) *Cache {
	return New(func(n *core.Node) string { return n.GetUserAgentName() }, missing)
}

// client plays one stream: it sends requests as the sotw server would and remembers what it was sent.
type client struct {
	t   *testing.T
	c   *Cache
	ch  chan cache.Response
	sub map[string]*stream.Subscription
	// cancel closes the type's open watch, as the server does before handing the cache a new request.
	cancel map[string]func()
}

func newClient(t *testing.T, c *Cache) *client {
	return &client{t: t, c: c, ch: make(chan cache.Response, 16), sub: map[string]*stream.Subscription{}, cancel: map[string]func(){}}
}

func (cl *client) request(typeURL, version, nonce string, names ...string) {
	cl.t.Helper()
	if cancel := cl.cancel[typeURL]; cancel != nil {
		cancel()
	}
	sub, ok := cl.sub[typeURL]
	if !ok {
		s := stream.NewSotwSubscription(names, true)
		sub = &s
		cl.sub[typeURL] = sub
	} else {
		sub.SetResourceSubscription(names)
	}
	req := &cache.Request{Node: grpcNode, TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
	cancel, err := cl.c.CreateWatch(req, sub, cl.ch)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.cancel[typeURL] = cancel
}

func (cl *client) nack(typeURL, nonce string, names ...string) {
	cl.t.Helper()
	if cancel := cl.cancel[typeURL]; cancel != nil {
		cancel()
	}
	sub := cl.sub[typeURL]
	req := &cache.Request{Node: grpcNode, TypeUrl: typeURL, ResponseNonce: nonce, ResourceNames: names,
		ErrorDetail: &status.Status{Message: "rejected"}}
	cancel, err := cl.c.CreateWatch(req, sub, cl.ch)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.cancel[typeURL] = cancel
}

// next takes the queued response (or fails), records what was returned, and returns the resource names.
func (cl *client) next() (string, []string) {
	cl.t.Helper()
	select {
	case r := <-cl.ch:
		out, _ := r.GetDiscoveryResponse()
		cl.sub[out.TypeUrl].SetReturnedResources(r.GetReturnedResources())
		return out.TypeUrl, resourceNames(r)
	default:
		cl.t.Fatal("no response queued")
	}
	return "", nil
}

// resourceNames returns the names of the resources a response carries.
func resourceNames(r cache.Response) []string {
	out, _ := r.GetDiscoveryResponse()
	var names []string
	for _, a := range out.Resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			panic(err)
		}
		names = append(names, cache.GetResourceName(m))
	}
	sort.Strings(names)
	return names
}

func (cl *client) none() {
	cl.t.Helper()
	select {
	case r := <-cl.ch:
		out, _ := r.GetDiscoveryResponse()
		cl.t.Fatalf("unexpected response %s %v", out.TypeUrl, resourceNames(r))
	default:
	}
}

func equal(a, b []string) bool { return slices.Equal(a, b) }

// The reason this cache exists: a request naming only some resources is answered with those, where
// go-control-plane's ADS snapshot cache would never answer it.
func TestNamedSubsetIsAnswered(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, []string{"a", "b"}, nil))
	cl := newClient(t, c)
	cl.request(resource.ListenerType, "", "", "a")
	if _, names := cl.next(); !equal(names, []string{"a"}) {
		t.Fatalf("got %v, want [a]", names)
	}
	// A target that does not exist gets an empty answer at once, so the client can report it missing.
	cl2 := newClient(t, c)
	cl2.request(resource.ListenerType, "", "", "nope")
	if _, names := cl2.next(); len(names) != 0 {
		t.Fatalf("got %v, want none", names)
	}
}

func TestOnlyChangesToWantedResourcesAreSent(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, []string{"a", "b"}, nil))
	cl := newClient(t, c)
	cl.request(resource.ListenerType, "", "", "a")
	cl.next()
	cl.request(resource.ListenerType, c.mustVersion(t, resource.ListenerType), "1", "a") // ACK
	cl.none()

	c.SetSnapshot("gRPC Go", snap(t, []string{"a", "b@changed"}, nil))
	cl.none() // b is not wanted
	c.SetSnapshot("gRPC Go", snap(t, []string{"a@changed", "b@changed"}, nil))
	if _, names := cl.next(); !equal(names, []string{"a"}) {
		t.Fatalf("got %v, want [a]", names)
	}
}

// After a NACK, the same content is not sent again: only a change of state sends something new.
func TestNackedContentIsNotResent(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, []string{"a"}, nil))
	cl := newClient(t, c)
	cl.request(resource.ListenerType, "", "", "a")
	cl.next()
	cl.nack(resource.ListenerType, "1", "a")
	cl.none()
	c.SetSnapshot("gRPC Go", snap(t, []string{"a"}, nil)) // same content again
	cl.none()
	c.SetSnapshot("gRPC Go", snap(t, []string{"a@fixed"}, nil))
	if _, names := cl.next(); !equal(names, []string{"a"}) {
		t.Fatalf("got %v after the fix, want [a]", names)
	}
}

// When everything changes at once, a stream gets clusters before endpoints before listeners before routes.
func TestResponsesAreOrderedClustersFirst(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, []string{"l"}, []string{"c"}))
	cl := newClient(t, c)
	for _, typ := range []string{resource.RouteType, resource.ListenerType, resource.EndpointType, resource.ClusterType} {
		names := []string{"l"}
		if typ == resource.EndpointType || typ == resource.ClusterType {
			names = []string{"c"}
		}
		cl.request(typ, "", "", names...)
		cl.next()
		cl.request(typ, "v", "1", names...) // ACK, now parked
	}
	cl.none()
	c.SetSnapshot("gRPC Go", snap(t, []string{"l@2"}, []string{"c@2"}))
	var order []string
	for i := 0; i < 4; i++ {
		typ, _ := cl.next()
		order = append(order, typ)
	}
	want := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}
	if !equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

// A wildcard subscriber learns of a removal by a response that no longer lists the resource.
func TestWildcardSeesRemoval(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, nil, []string{"a", "b"}))
	cl := newClient(t, c)
	cl.request(resource.ClusterType, "", "")
	if _, names := cl.next(); !equal(names, []string{"a", "b"}) {
		t.Fatalf("got %v", names)
	}
	cl.request(resource.ClusterType, "v", "1")
	c.SetSnapshot("gRPC Go", snap(t, nil, []string{"a"}))
	if _, names := cl.next(); !equal(names, []string{"a"}) {
		t.Fatalf("got %v after removing b, want [a]", names)
	}
}

// A node of a group with no snapshot waits; the owner is asked once and its snapshot answers the wait.
func TestNewGroupIsBuiltOnDemand(t *testing.T) {
	var asked []string
	c := newCache(func(g string, _ *core.Node) { asked = append(asked, g) })
	cl := newClient(t, c)
	cl.request(resource.ClusterType, "", "")
	cl.none()
	if !equal(asked, []string{"gRPC Go"}) {
		t.Fatalf("asked for %v", asked)
	}
	c.SetSnapshot("gRPC Go", snap(t, nil, []string{"a"}))
	if _, names := cl.next(); !equal(names, []string{"a"}) {
		t.Fatalf("got %v", names)
	}
}

// Versions come from content only: the same resources give the same versions, whatever the input order.
func TestVersionsComeFromContent(t *testing.T) {
	a, b := snap(t, []string{"x", "y"}, []string{"c"}), snap(t, []string{"y", "x"}, []string{"c"})
	for _, typ := range []string{resource.ListenerType, resource.ClusterType} {
		if a.Version(typ) == "" || a.Version(typ) != b.Version(typ) {
			t.Errorf("%s: %q vs %q", typ, a.Version(typ), b.Version(typ))
		}
	}
	if c := snap(t, []string{"x@other", "y"}, []string{"c"}); c.Version(resource.ListenerType) == a.Version(resource.ListenerType) {
		t.Error("a content change kept the version")
	}
}

func (c *Cache) mustVersion(t *testing.T, typ string) string {
	s, ok := c.Snapshot("gRPC Go")
	if !ok {
		t.Fatal("no snapshot")
	}
	return s.Version(typ)
}

// Streams that were up to date and want every changed resource (wildcard ones, and Envoy's endpoint
// subscription naming every cluster) are all sent one response to a change, encoded once: its encoding
// is what proto.Marshal writes for its resources, and a resource that went away is forgotten by each. A
// stream that wants only some of them gets its own.
func TestChangeIsEncodedOnceForEveryStreamWantingAll(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("gRPC Go", snap(t, nil, []string{"a", "b", "c"}))
	clients := []*client{newClient(t, c), newClient(t, c), newClient(t, c), newClient(t, c)}
	names := [][]string{nil, {"a", "b", "c", "d"}, nil, {"a", "b", "c", "d"}}
	for i, cl := range clients {
		cl.request(resource.EndpointType, "", "", names[i]...)
		cl.next()
		cl.request(resource.EndpointType, c.mustVersion(t, resource.EndpointType), "1", names[i]...)
		cl.none()
	}
	subset := newClient(t, c)
	subset.request(resource.EndpointType, "", "", "a")
	subset.next()
	subset.request(resource.EndpointType, c.mustVersion(t, resource.EndpointType), "1", "a")
	c.SetSnapshot("gRPC Go", snap(t, nil, []string{"a@2", "b", "d"})) // a changed, c went away, d is new
	var wire []byte
	for i, cl := range clients {
		r := <-cl.ch
		got := r.(*response).EncodedResources()
		out, _ := r.GetDiscoveryResponse()
		want, err := proto.Marshal(&discovery.DiscoveryResponse{Resources: out.Resources})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("stream %d: change encoded as\n%x\nwant\n%x", i, got, want)
		}
		if names := resourceNames(r); !equal(names, []string{"a", "d"}) {
			t.Fatalf("stream %d: sent %v, want [a d]", i, names)
		}
		if i > 0 && &got[0] != &wire[0] {
			t.Fatalf("stream %d: the change was encoded again", i)
		}
		wire = got
		returned := r.GetReturnedResources()
		if _, ok := returned["c"]; ok || returned["d"] == "" || returned[versionKey] != c.mustVersion(t, resource.EndpointType) {
			t.Fatalf("stream %d: returned resources after the change: %v", i, returned)
		}
	}
	r := <-subset.ch
	if names := resourceNames(r); !equal(names, []string{"a"}) {
		t.Fatalf("a stream naming a: sent %v", names)
	}
	if _, ok := r.GetReturnedResources()["d"]; ok {
		t.Fatal("a stream naming a: returned resources hold d")
	}
}
