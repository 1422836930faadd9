package groupcache

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// A state-of-the-world stream that names its resources, driven as dynup's server drives the cache (the
// subscription is set again only when a request names other resources, and every response is ACKed with
// the same names), holds after every step the current content of every resource it names that exists,
// whatever the order of new name lists, ACKs, new snapshots and snapshots derived by Replace, and whether
// a change comes while a response is on its way or while the stream waits. (ACKs are
// answered from the set's version alone: this is what that shortcut must keep.)
func TestSotwNamedStreamConverges(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		c := envoyCache(t)
		zone := map[string]int{"a": 0, "b": 1}
		build := func() *Snapshot { return zonedSnapshot(t, all, zone) }
		cur := build()
		c.SetSnapshot("envoy", cur)
		ch := make(chan cache.Response, 4)
		var sub stream.Subscription
		var names []string
		var cancel func()
		nonce := 0
		held := map[string]string{} // name → encoding of the resource the client holds
		request := func(want []string) {
			if cancel != nil {
				cancel()
			}
			if names == nil {
				sub = stream.NewSotwSubscription(want, true)
			} else if !slices.Equal(names, want) {
				sub.SetResourceSubscription(want)
			}
			names = want
			req := &cache.Request{Node: envoyNode, TypeUrl: resource.EndpointType, ResourceNames: want}
			if nonce > 0 {
				req.ResponseNonce = fmt.Sprint(nonce)
			}
			var err error
			if cancel, err = c.CreateWatch(req, sub, ch); err != nil {
				t.Fatal(err)
			}
		}
		drain := func() {
			for {
				select {
				case r := <-ch:
					out, _ := r.GetDiscoveryResponse()
					sub.SetReturnedResources(r.GetReturnedResources())
					for _, a := range out.Resources {
						var cla endpoint.ClusterLoadAssignment
						if err := a.UnmarshalTo(&cla); err != nil {
							t.Fatal(err)
						}
						held[cla.ClusterName] = string(a.Value)
					}
					nonce++
					request(names) // the ACK
				default:
					return
				}
			}
		}
		randomNames := func() []string {
			var out []string
			for _, n := range all {
				if rng.Intn(2) == 0 {
					out = append(out, n)
				}
			}
			if len(out) == 0 {
				out = []string{all[rng.Intn(len(all))]}
			}
			return out
		}
		request(randomNames())
		drain()
		for step := 0; step < 200; step++ {
			n := all[rng.Intn(len(all))]
			switch op := rng.Intn(6); op {
			case 0:
				select { // the server drops a queued response of the type before it replaces the watch
				case <-ch:
				default:
				}
				request(randomNames())
			case 1: // a resource appears or goes away: a new shape, a new snapshot
				if _, ok := zone[n]; ok {
					delete(zone, n)
				} else {
					zone[n] = rng.Intn(3)
				}
				cur = build()
				c.SetSnapshot("envoy", cur)
			default:
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
			for _, sn := range names {
				e := cur.types[resource.EndpointType].get(sn)
				if e == nil {
					continue
				}
				if held[sn] != string(e.any.Value) {
					t.Fatalf("seed %d step %d: the client does not hold the current %s (names %v)", seed, step, sn, names)
				}
			}
		}
	}
}
