package groupcache

import (
	"runtime"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// Incremental responses that many streams are sent alike (every resource of a set to each new stream, a
// change to every stream that wants it) share one list of resources, encoded once. go-control-plane's
// delta server sends the DeltaDiscoveryResponse the cache made; the server's stream finds the encoding
// of its resources here (EncodedDeltaResources), by the list's first element, and writes it as it is,
// instead of encoding the same resources again for each stream (200 of them for each of 10,000 streams
// reconnecting). State-of-the-world responses carry their encoding themselves (response.wire): dynup's
// own server sees the cache's response, go-control-plane's delta server passes on only the message.

// deltaLists holds the encoding of each shared list, by the address of its first element, until the list's
// owner (a typeSet, or a change) is collected. A response still holding a list after that is encoded as
// usual. Holding the address keeps the list itself alive, so it cannot be reused for another list.
var deltaLists sync.Map // **discovery.Resource → *sharedDeltas

type sharedDeltas struct {
	list []*discovery.Resource
	wire []byte
}

// shareDeltas records list's encoding for as long as owner lives, and returns list. The list must never
// be modified after this.
func shareDeltas[T any](owner *T, list []*discovery.Resource) []*discovery.Resource {
	if len(list) == 0 {
		return list
	}
	s := &sharedDeltas{list: list, wire: wireOf(list)}
	key := &list[0]
	deltaLists.Store(key, s)
	runtime.AddCleanup(owner, func(key **discovery.Resource) { deltaLists.CompareAndDelete(key, s) }, key)
	return list
}

// EncodedDeltaResources returns resources as a DeltaDiscoveryResponse's resources field is encoded, when
// they are a list the cache shares between streams, or nil.
func EncodedDeltaResources(resources []*discovery.Resource) []byte {
	if len(resources) == 0 {
		return nil
	}
	v, ok := deltaLists.Load(&resources[0])
	if !ok {
		return nil
	}
	// The same first element's address and the same length: the same list (shared lists are never
	// modified).
	if s := v.(*sharedDeltas); len(s.list) == len(resources) {
		return s.wire
	}
	return nil
}

// deltaAll returns every item of the set in the incremental wrapper, in name order, shared.
func (t *typeSet) deltaAll() []*discovery.Resource {
	t.deltasOnce.Do(func() {
		list := make([]*discovery.Resource, len(t.names))
		for i, n := range t.names {
			list[i] = t.get(n).delta
		}
		t.deltas = shareDeltas(t, list)
	})
	return t.deltas
}

// forAllDelta is forAll for incremental streams: the changed resources, unless one of them went away
// (gone: the names that went away are reported per stream, by what each was sent).
func (cs *changeSet) forAllDelta(set *typeSet) *sharedDeltaChange {
	if cs.sharedDelta != nil {
		return cs.sharedDelta
	}
	w := &sharedDeltaChange{}
	list := make([]*discovery.Resource, 0, len(cs.names))
	for _, n := range cs.names {
		e := set.get(n)
		if e == nil {
			w.gone = true
			break
		}
		w.edits = append(w.edits, returnedEdit{name: n, version: e.version})
		list = append(list, e.delta)
	}
	if !w.gone {
		w.edits = append(w.edits, returnedEdit{name: versionKey, version: set.version})
		w.out = shareDeltas(cs, list)
	}
	cs.sharedDelta = w
	return w
}

// sharedDeltaChange is the incremental response to a change that every stream wanting all of it gets;
// gone says a changed resource went away, and each stream is then answered on its own.
type sharedDeltaChange struct {
	out   []*discovery.Resource
	edits []returnedEdit
	gone  bool
}
