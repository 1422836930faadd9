package groupcache

import (
	"fmt"
	"math/rand"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// An incremental stream that names its resources holds, after every step and the ACKs it leads to, the
// current version of every resource it subscribes to, and knows which do not exist, whatever the order of
// (un)subscribe requests, ACKs, new snapshots and snapshots derived by Replace, and whether a change comes
// while a response is on its way or while the stream waits. (ACKs that do not change
// the subscription are answered from the set's version alone: this is what that shortcut must keep.)
func TestDeltaNamedStreamConverges(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		c := envoyCache(t)
		zone := map[string]int{} // current content of each existing resource; absent: does not exist
		build := func() *Snapshot { return zonedSnapshot(t, names, zone) }
		cur := build()
		c.SetSnapshot("envoy", cur)
		d := newDeltaClient(t, c)
		held := map[string]string{} // what the client holds: version, or "" for known not to exist
		subscribed := map[string]bool{}
		nonce := 0
		drain := func() {
			for {
				select {
				case r := <-d.ch:
					out, _ := r.GetDeltaDiscoveryResponse()
					d.sub[out.TypeUrl].SetReturnedResources(r.GetReturnedResources())
					for _, res := range out.Resources {
						held[res.Name] = res.Version
					}
					for _, n := range out.RemovedResources {
						held[n] = ""
					}
					nonce++
					d.request(resource.EndpointType, fmt.Sprint(nonce), nil, nil, false) // the ACK
				default:
					return
				}
			}
		}
		first := []string{names[rng.Intn(len(names))]}
		subscribed[first[0]] = true
		d.request(resource.EndpointType, "", first, nil, false)
		drain()
		for step := 0; step < 200; step++ {
			n := names[rng.Intn(len(names))]
			switch op := rng.Intn(6); op {
			case 0:
				drain() // the server sends what is queued before it handles a request
				subscribed[n] = true
				d.request(resource.EndpointType, fmt.Sprint(nonce), []string{n}, nil, false)
			case 1:
				drain()
				delete(subscribed, n)
				delete(held, n)
				d.request(resource.EndpointType, fmt.Sprint(nonce), nil, []string{n}, false)
			case 2: // a resource appears or goes away: a new shape, a new snapshot
				if _, ok := zone[n]; ok {
					delete(zone, n)
				} else {
					zone[n] = rng.Intn(3)
				}
				cur = build()
				c.SetSnapshot("envoy", cur)
			default: // a resource changes content: derived from the current snapshot when it exists
				if _, ok := zone[n]; !ok {
					continue
				}
				zone[n] = (zone[n] + 1 + rng.Intn(2)) % 3
				next, err := cur.Replace(map[string][]types.Resource{resource.EndpointType: {zonedCLA(n, zone[n])}})
				if err != nil {
					t.Fatal(err)
				}
				cur = next
				c.SetSnapshot("envoy", cur)
			}
			if rng.Intn(3) == 0 {
				continue // a response may wait, unread, while more changes come
			}
			drain()
			for sn := range subscribed {
				want := ""
				if _, ok := zone[sn]; ok {
					want = cur.types[resource.EndpointType].get(sn).version
				}
				if got, ok := held[sn]; !ok || got != want {
					t.Fatalf("seed %d step %d: the client holds %q for %s (known: %v), the snapshot %q", seed, step, got, sn, ok, want)
				}
			}
		}
	}
}

// zonedSnapshot is a snapshot of an endpoint assignment for each of names that zone has, in that zone.
func zonedSnapshot(t *testing.T, names []string, zone map[string]int) *Snapshot {
	t.Helper()
	var list []types.Resource
	for _, n := range names {
		if z, ok := zone[n]; ok {
			list = append(list, zonedCLA(n, z))
		}
	}
	s, err := NewSnapshot(map[string][]types.Resource{resource.EndpointType: list})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func zonedCLA(name string, zone int) *endpoint.ClusterLoadAssignment {
	return &endpoint.ClusterLoadAssignment{ClusterName: name,
		Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Zone: fmt.Sprint("z", zone)}}}}
}
