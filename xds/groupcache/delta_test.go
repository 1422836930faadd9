package groupcache

import (
	"bytes"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

var envoyNode = &core.Node{Id: "e1", UserAgentName: "envoy"}

// deltaClient plays one incremental stream as go-control-plane's delta server drives the cache.
type deltaClient struct {
	t   *testing.T
	c   *Cache
	ch  chan cache.DeltaResponse
	sub map[string]*stream.Subscription
	// cancel closes the type's open watch, as the server does before handing the cache a new request.
	cancel map[string]func()
}

func newDeltaClient(t *testing.T, c *Cache) *deltaClient {
	return &deltaClient{t: t, c: c, ch: make(chan cache.DeltaResponse, 16), sub: map[string]*stream.Subscription{},
		cancel: map[string]func(){}}
}

// request sends a request of typeURL: the first one creates the subscription (no names: wildcard).
func (d *deltaClient) request(typeURL, nonce string, subscribe, unsubscribe []string, nack bool) {
	d.t.Helper()
	if cancel := d.cancel[typeURL]; cancel != nil {
		cancel()
	}
	sub, ok := d.sub[typeURL]
	if !ok {
		s := stream.NewDeltaSubscription(subscribe, unsubscribe, nil, true)
		sub = &s
		d.sub[typeURL] = sub
	} else {
		sub.UpdateResourceSubscriptions(subscribe, unsubscribe)
	}
	req := &cache.DeltaRequest{Node: envoyNode, TypeUrl: typeURL, ResponseNonce: nonce,
		ResourceNamesSubscribe: subscribe, ResourceNamesUnsubscribe: unsubscribe}
	if nack {
		req.ErrorDetail = &status.Status{Message: "rejected"}
	}
	cancel, err := d.c.CreateDeltaWatch(req, sub, d.ch)
	if err != nil {
		d.t.Fatal(err)
	}
	d.cancel[typeURL] = cancel
}

// next takes the queued response, records what was returned, and returns the names sent and removed.
func (d *deltaClient) next() (sent, removed []string) {
	d.t.Helper()
	select {
	case r := <-d.ch:
		out, _ := r.GetDeltaDiscoveryResponse()
		d.sub[out.TypeUrl].SetReturnedResources(r.GetReturnedResources())
		for _, res := range out.Resources {
			sent = append(sent, res.Name)
		}
		return sent, out.RemovedResources
	default:
		d.t.Fatal("no delta response queued")
	}
	return nil, nil
}

func (d *deltaClient) none() {
	d.t.Helper()
	select {
	case r := <-d.ch:
		out, _ := r.GetDeltaDiscoveryResponse()
		d.t.Fatalf("unexpected delta response %s: %v resources, removed %v", out.TypeUrl, out.Resources, out.RemovedResources)
	default:
	}
}

func envoyCache(t *testing.T) *Cache {
	return New(func(n *core.Node) string { return n.GetUserAgentName() }, nil)
}

// A wildcard delta stream gets everything once, then only what changed, and the names of what went away.
func TestDeltaSendsOnlyChanges(t *testing.T) {
	c := envoyCache(t)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b", "c"}))
	d := newDeltaClient(t, c)
	d.request(resource.ClusterType, "", nil, nil, false)
	if sent, _ := d.next(); !equal(sent, []string{"a", "b", "c"}) {
		t.Fatalf("first response sent %v", sent)
	}
	d.request(resource.ClusterType, "1", nil, nil, false) // ACK
	d.none()

	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b@2", "c"}))
	if sent, removed := d.next(); !equal(sent, []string{"b"}) || len(removed) != 0 {
		t.Fatalf("after changing b: sent %v removed %v", sent, removed)
	}
	d.request(resource.ClusterType, "2", nil, nil, false)
	d.none()

	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b@2"}))
	if sent, removed := d.next(); len(sent) != 0 || !equal(removed, []string{"c"}) {
		t.Fatalf("after removing c: sent %v removed %v", sent, removed)
	}
	d.request(resource.ClusterType, "3", nil, nil, false)
	d.none()
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b@2"})) // same content
	d.none()
}

// After a NACK the same content is not sent again; a fix is.
func TestDeltaNackedContentIsNotResent(t *testing.T) {
	c := envoyCache(t)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a"}))
	d := newDeltaClient(t, c)
	d.request(resource.ClusterType, "", nil, nil, false)
	d.next()
	d.request(resource.ClusterType, "1", nil, nil, false)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@bad"}))
	d.next()
	d.request(resource.ClusterType, "2", nil, nil, true) // NACK
	d.none()
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@fixed"}))
	if sent, _ := d.next(); !equal(sent, []string{"a"}) {
		t.Fatalf("after the fix: sent %v", sent)
	}
}

// Named subscriptions get the named resources; one that does not exist is reported removed, once, and
// sent when it appears. Subscribing later sends just the new name.
func TestDeltaNamedSubscriptions(t *testing.T) {
	c := envoyCache(t)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b"}))
	d := newDeltaClient(t, c)
	d.request(resource.EndpointType, "", []string{"a", "x"}, nil, false)
	if sent, removed := d.next(); !equal(sent, []string{"a"}) || !equal(removed, []string{"x"}) {
		t.Fatalf("sent %v removed %v, want [a] and [x]", sent, removed)
	}
	d.request(resource.EndpointType, "1", nil, nil, false)
	d.none()
	d.request(resource.EndpointType, "", []string{"b"}, nil, false)
	if sent, removed := d.next(); !equal(sent, []string{"b"}) || len(removed) != 0 {
		t.Fatalf("subscribing b: sent %v removed %v", sent, removed)
	}
	d.request(resource.EndpointType, "2", nil, nil, false)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b", "x"}))
	if sent, _ := d.next(); !equal(sent, []string{"x"}) {
		t.Fatalf("x appearing: sent %v", sent)
	}
	d.request(resource.EndpointType, "3", nil, []string{"a"}, false) // unsubscribe: nothing to send
	d.none()
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@2", "b", "x"}))
	d.none() // a is no longer wanted
}

// A first wildcard request is answered even when there is nothing of the type, so Envoy can finish
// initializing; later empty states send nothing.
func TestDeltaEmptyWildcardIsAnswered(t *testing.T) {
	c := envoyCache(t)
	c.SetSnapshot("envoy", snap(t, nil, nil))
	d := newDeltaClient(t, c)
	d.request(resource.RouteType, "", nil, nil, false)
	if sent, removed := d.next(); len(sent)+len(removed) != 0 {
		t.Fatalf("sent %v removed %v", sent, removed)
	}
	d.request(resource.RouteType, "1", nil, nil, false)
	c.SetSnapshot("envoy", snap(t, nil, nil))
	d.none()
}

// Delta and state-of-the-world streams of one group are served from the same snapshot.
func TestDeltaAndSotwShareSnapshots(t *testing.T) {
	c := envoyCache(t)
	before := Encodes()
	c.SetSnapshot("envoy", snap(t, []string{"l"}, []string{"a"}))
	encoded := Encodes() - before
	d := newDeltaClient(t, c)
	d.request(resource.ListenerType, "", nil, nil, false)
	sotw := newClient(t, c)
	sub := stream.NewSotwSubscription(nil, true)
	sotw.sub[resource.ListenerType] = &sub
	if _, err := c.CreateWatch(&discovery.DiscoveryRequest{Node: envoyNode, TypeUrl: resource.ListenerType}, &sub, sotw.ch); err != nil {
		t.Fatal(err)
	}
	d.next()
	sotw.next()
	if n := Encodes() - before; n != encoded {
		t.Fatalf("%d encodes after serving two streams, want the snapshot's %d", n, encoded)
	}
}

// go-control-plane's delta server may apply a response of a watch it has already replaced (it cancels the
// old watch after applying what is queued), while the new watch, holding the same map, is parked in the
// cache. The edits of that late answer must not race the cache reading the map for the new watch (run
// with -race).
func TestLateDeltaAnswerDoesNotRaceTheNextWatch(t *testing.T) {
	c := newCache(nil)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b"}))
	d := newDeltaClient(t, c)
	d.request(resource.EndpointType, "", nil, nil, false)
	d.next()
	d.request(resource.EndpointType, "1", nil, nil, false) // parked: up to date
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@2", "b"}))
	late := <-d.ch // answered, not yet applied
	// A request that unsubscribes from a replaces the watch; the new one wants only b, which the stream
	// has, so it is parked, reading the same map. The server hands the cache its subscription by value, as
	// go-control-plane's does: the copy shares the maps.
	sub := d.sub[resource.EndpointType]
	sub.UpdateResourceSubscriptions([]string{"b"}, []string{"*", "a"})
	cancel, err := c.CreateDeltaWatch(&cache.DeltaRequest{Node: envoyNode, TypeUrl: resource.EndpointType, ResponseNonce: "1",
		ResourceNamesSubscribe: []string{"b"}, ResourceNamesUnsubscribe: []string{"*", "a"}}, *sub, d.ch)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	select {
	case r := <-d.ch:
		t.Fatalf("the new watch was answered (%v), not parked: the test does not set up the race", r.GetReturnedResources())
	default:
	}
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		sub.SetReturnedResources(late.GetNextVersionMap())
	}()
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@2"})) // b goes: the cache looks it up in the map
	<-applied
}

// Incremental responses that streams get alike (a new stream's every resource, a change every stream
// wants) share one list, whose encoding EncodedDeltaResources finds: what proto.Marshal writes for it. A
// list made for one stream has none, and neither has a change in which a resource went away (what each
// stream is told of it depends on what it was sent).
func TestSharedDeltaListsAreEncodedOnce(t *testing.T) {
	c := envoyCache(t)
	c.SetSnapshot("envoy", snap(t, nil, []string{"a", "b", "c"}))
	wildcard, named, some := newDeltaClient(t, c), newDeltaClient(t, c), newDeltaClient(t, c)
	wildcard.request(resource.EndpointType, "", nil, nil, false)
	named.request(resource.EndpointType, "", []string{"c", "b", "a"}, nil, false)
	some.request(resource.EndpointType, "", []string{"a", "b"}, nil, false)
	responses := func() []*discovery.DeltaDiscoveryResponse {
		var out []*discovery.DeltaDiscoveryResponse
		for _, d := range []*deltaClient{wildcard, named, some} {
			r := <-d.ch
			resp, _ := r.GetDeltaDiscoveryResponse()
			d.sub[resource.EndpointType].SetReturnedResources(r.GetReturnedResources())
			out = append(out, resp)
		}
		return out
	}
	// The first two streams want every resource; the third wants a and b, which is all of a change to a.
	check := func(what string, rs []*discovery.DeltaDiscoveryResponse, shared, thirdShared bool) {
		t.Helper()
		for i, r := range rs[:2] {
			got := EncodedDeltaResources(r.Resources)
			if !shared {
				if got != nil {
					t.Fatalf("%s, stream %d: a list of its own has a shared encoding", what, i)
				}
				continue
			}
			want, err := proto.Marshal(&discovery.DeltaDiscoveryResponse{Resources: r.Resources})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s, stream %d: shared encoding\n%x\nwant\n%x", what, i, got, want)
			}
		}
		if shared && &rs[0].Resources[0] != &rs[1].Resources[0] {
			t.Fatalf("%s: the wildcard and the all-naming stream were sent lists of their own", what)
		}
		if (EncodedDeltaResources(rs[2].Resources) != nil) != thirdShared {
			t.Fatalf("%s: the stream naming a and b was sent a shared list: %v, want %v", what, !thirdShared, thirdShared)
		}
	}
	check("first responses", responses(), true, false)
	for _, d := range []*deltaClient{wildcard, named, some} {
		d.request(resource.EndpointType, "1", nil, nil, false)
	}
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@2", "b", "c"}))
	rs := responses()
	check("a change", rs, true, true)
	if len(rs[0].Resources) != 1 || rs[0].Resources[0].Name != "a" {
		t.Fatalf("a change sent %v", rs[0].Resources)
	}
	for _, d := range []*deltaClient{wildcard, named, some} {
		d.request(resource.EndpointType, "2", nil, nil, false)
	}
	c.SetSnapshot("envoy", snap(t, nil, []string{"a@3", "c"})) // b went away
	rs = responses()
	check("a change with a removal", rs, false, false)
	for i, r := range rs {
		if r.Resources[0].Name != "a" || !equal(r.RemovedResources, []string{"b"}) {
			t.Fatalf("stream %d: removed %v, want [b]", i, r.RemovedResources)
		}
	}
}
