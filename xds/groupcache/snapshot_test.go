package groupcache

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
)

func cla(name, zone string) *endpoint.ClusterLoadAssignment {
	return &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Zone: zone}}}}
}

// A snapshot derived by replacing resources is the snapshot built from scratch with the same resources:
// same versions, same content, whatever the chain of replacements (including flattening).
func TestReplaceEqualsRebuild(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	const n = 40
	zones := make([]string, n)
	build := func() map[string][]types.Resource {
		res := map[string][]types.Resource{}
		for i, z := range zones {
			name := fmt.Sprintf("c%02d", i)
			res[resource.EndpointType] = append(res[resource.EndpointType], cla(name, z))
			res[resource.ClusterType] = append(res[resource.ClusterType], &cluster.Cluster{Name: name})
		}
		return res
	}
	s, err := NewSnapshot(build())
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < 60; step++ {
		var changed []types.Resource
		for k := 0; k < 1+rng.Intn(5); k++ {
			i := rng.Intn(n)
			zones[i] = fmt.Sprintf("z%d", rng.Intn(3))
			changed = append(changed, cla(fmt.Sprintf("c%02d", i), zones[i]))
		}
		// Replacing the same name twice in one call is an error; keep the last of each.
		last := map[string]types.Resource{}
		for _, r := range changed {
			last[r.(*endpoint.ClusterLoadAssignment).ClusterName] = r
		}
		var list []types.Resource
		for _, r := range last {
			list = append(list, r)
		}
		before := Encodes()
		next, err := s.Replace(map[string][]types.Resource{resource.EndpointType: list})
		if err != nil {
			t.Fatal(err)
		}
		if got := Encodes() - before; got != uint64(len(list)) {
			t.Fatalf("step %d: %d encodes for %d replaced resources", step, got, len(list))
		}
		fresh, err := NewSnapshot(build())
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{resource.EndpointType, resource.ClusterType} {
			if next.Version(typ) != fresh.Version(typ) || next.Size(typ) != fresh.Size(typ) {
				t.Fatalf("step %d %s: derived %s/%d, rebuilt %s/%d", step, typ, next.Version(typ), next.Size(typ), fresh.Version(typ), fresh.Size(typ))
			}
			for _, name := range fresh.Names(typ) {
				if a, b := next.types[typ].get(name), fresh.types[typ].get(name); a.version != b.version {
					t.Fatalf("step %d %s %s: %s vs %s", step, typ, name, a.version, b.version)
				}
			}
		}
		if next.types[resource.ClusterType] != s.types[resource.ClusterType] {
			t.Fatal("an untouched type was copied")
		}
		s = next
	}
	if _, err := s.Replace(map[string][]types.Resource{resource.EndpointType: {cla("new", "")}}); err == nil {
		t.Fatal("replacing a resource the snapshot does not have succeeded")
	}
}

// The endpoint fast path seen from streams: after one ClusterLoadAssignment changes, Envoy-like streams
// (CDS and LDS wildcard, EDS and RDS by name) are sent that one resource and nothing else.
func TestEndpointChangeSendsOnlyThatEndpoint(t *testing.T) {
	c := newCache(nil)
	base := snap(t, []string{"l"}, []string{"a", "b", "c"})
	c.SetSnapshot("gRPC Go", base)
	cl := newClient(t, c)
	subs := map[string][]string{resource.ClusterType: nil, resource.ListenerType: nil,
		resource.EndpointType: {"a", "b", "c"}, resource.RouteType: {"l"}}
	for _, typ := range typeOrder {
		cl.request(typ, "", "", subs[typ]...)
		cl.next()
		cl.request(typ, c.mustVersion(t, typ), "1", subs[typ]...)
	}
	cl.none()
	next, err := base.Replace(map[string][]types.Resource{resource.EndpointType: {cla("b", "moved")}})
	if err != nil {
		t.Fatal(err)
	}
	before := fanoutCount(t)
	c.SetSnapshot("gRPC Go", next)
	typ, names := cl.next()
	if typ != resource.EndpointType || !equal(names, []string{"b"}) {
		t.Fatalf("got %s %v", typ, names)
	}
	cl.none()
	if got := fanoutCount(t) - before; got != 1 {
		t.Fatalf("%v responses queued, want 1", got)
	}
}

// The response to an endpoint change carries only the changed assignment (the other two are known).
func TestPartialEndpointsResponse(t *testing.T) {
	c := newCache(nil)
	base := snap(t, nil, []string{"a", "b", "c"})
	c.SetSnapshot("gRPC Go", base)
	cl := newClient(t, c)
	cl.request(resource.EndpointType, "", "", "a", "b", "c")
	cl.next()
	cl.request(resource.EndpointType, "v", "1", "a", "b", "c")
	next, err := base.Replace(map[string][]types.Resource{resource.EndpointType: {cla("b", "moved")}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetSnapshot("gRPC Go", next)
	select {
	case r := <-cl.ch:
		out, _ := r.GetDiscoveryResponse()
		if len(out.Resources) != 1 {
			t.Fatalf("%d resources sent, want the one that changed", len(out.Resources))
		}
		got := &endpoint.ClusterLoadAssignment{}
		if err := out.Resources[0].UnmarshalTo(got); err != nil || got.ClusterName != "b" {
			t.Fatalf("sent %v (%v), want b", got.ClusterName, err)
		}
	default:
		t.Fatal("no response")
	}
}

func fanoutCount(t *testing.T) float64 {
	t.Helper()
	var n float64
	for _, typ := range typeOrder {
		n += testutil.ToFloat64(fanoutResponses.WithLabelValues(shortType(typ)))
	}
	return n
}

// Installing a derived snapshot drops its link to the one it came from; otherwise every endpoint change
// would keep every earlier snapshot of the group in memory.
func TestInstalledSnapshotForgetsItsBase(t *testing.T) {
	c := New(func(*core.Node) string { return "g" }, nil)
	s, err := NewSnapshot(map[string][]types.Resource{resource.EndpointType: {cla("a", "z1"), cla("b", "z1")}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetSnapshot("g", s)
	for i := 0; i < 3; i++ {
		next, err := s.Replace(map[string][]types.Resource{resource.EndpointType: {cla("a", fmt.Sprintf("z%d", i+2))}})
		if err != nil {
			t.Fatal(err)
		}
		if next.base != s {
			t.Fatalf("a derived snapshot should know its base until installed")
		}
		c.SetSnapshot("g", next)
		if next.base != nil || next.replaced != nil {
			t.Fatalf("installed snapshot %d still holds its base", i)
		}
		s = next
	}
}

// A set's resources encoded once for every stream are what proto.Marshal writes for them as a
// DiscoveryResponse's resources, also in a set derived by Replace.
func TestWholeSetEncodingIsProtoMarshal(t *testing.T) {
	s := snap(t, []string{"l1", "l2"}, []string{"a", "b", "c"})
	derived, err := s.Replace(map[string][]types.Resource{resource.EndpointType: {zonedCLA("b", 2)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range []*Snapshot{s, derived} {
		for typeURL, set := range sn.types {
			want, err := proto.Marshal(&discovery.DiscoveryResponse{Resources: set.anys()})
			if err != nil {
				t.Fatal(err)
			}
			if got := set.wireAll(); !bytes.Equal(got, want) {
				t.Fatalf("%s: whole set encoded as\n%x\nwant\n%x", typeURL, got, want)
			}
		}
	}
}
