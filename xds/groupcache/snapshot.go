// Package groupcache serves xDS from one pre-encoded snapshot per node group.
//
// go-control-plane's SnapshotCache keeps a snapshot per node and encodes every resource again for every
// stream; in ADS mode it also never answers a request that names only some resources, which is what
// proxyless gRPC clients send. This cache keys snapshots by group, encodes each resource once when the
// snapshot is built, answers named subsets, and versions every resource by its content, so identical
// state has identical versions after a restart and on every replica.
//
// A snapshot can also be derived from the previous one by replacing a few resources (Replace): only those
// are encoded, the rest is shared, and the cache then knows exactly what changed, so a one-endpoint change
// costs work in proportion to what changed and to the streams that want it, not to the size of the config.
package groupcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"strconv"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// typeOrder is the order responses are queued on a stream when several types change at once: clusters
// before their endpoints, listeners before their routes, so Envoy warms new clusters before routes use them.
var typeOrder = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

func typeRank(typeURL string) int {
	for i, t := range typeOrder {
		if t == typeURL {
			return i
		}
	}
	return len(typeOrder)
}

// Snapshot is the encoded resources of one group. Its resources never change once built; the cache drops
// its link to the snapshot it was derived from (base, replaced) when it installs it.
type Snapshot struct {
	types map[string]*typeSet
	// base and replaced say how the snapshot was derived: from base, by replacing the named resources (by
	// type). They let the cache find what changed without comparing every resource.
	base     *Snapshot
	replaced map[string][]string
}

// typeSet is the resources of one type. A derived set keeps only the resources it replaced and finds the
// others in its parent; chains are flattened before they get long, so a lookup stays a few map reads.
type typeSet struct {
	version string
	sum     uint64   // sum of the items' hashes, from which version is made; updatable one item at a time
	size    int      // encoded bytes of all items
	names   []string // sorted; shared with the parent
	items   map[string]*encoded
	parent  *typeSet
	depth   int
	own     int // items held by this set and its ancestors' overlays (excluding the flat root)

	allOnce sync.Once
	all     []*anypb.Any // every item in names order, built on first use and shared by every stream
	// wire is all as a DiscoveryResponse's resources field is encoded, built on first use: a response of
	// the whole set is then written without encoding every resource again for each stream.
	wireOnce sync.Once
	wire     []byte
	// deltas is every item in the incremental wrapper, in names order, shared and encoded once (deltawire.go).
	deltasOnce sync.Once
	deltas     []*discovery.Resource
}

// encoded is one resource, marshalled once and shared by every stream of every snapshot that holds it.
type encoded struct {
	version string // content hash of the encoding
	hash    uint64 // hash of name and version, summed into the type's version
	any     *anypb.Any
	delta   *discovery.Resource // the same bytes in the incremental protocol's wrapper
}

// maxDepth, flatBelow and the overlay share bound the cost of lookups in derived sets.
const (
	maxDepth  = 4
	flatBelow = 1024
)

// NewSnapshot encodes resources (by type URL). Each resource is marshalled once, deterministically.
func NewSnapshot(resources map[string][]types.Resource) (*Snapshot, error) {
	s := &Snapshot{types: map[string]*typeSet{}}
	for typeURL, list := range resources {
		set := &typeSet{items: make(map[string]*encoded, len(list))}
		all, err := encodeAll(typeURL, list)
		if err != nil {
			return nil, err
		}
		for i, r := range list {
			name := cache.GetResourceName(r)
			if _, dup := set.items[name]; dup {
				return nil, fmt.Errorf("%s %q appears twice", typeURL, name)
			}
			e := all[i]
			set.items[name] = e
			set.names = append(set.names, name)
			set.sum += e.hash
			set.size += len(e.any.Value)
		}
		sort.Strings(set.names)
		set.version = sumVersion(set.sum, len(set.names))
		s.types[typeURL] = set
	}
	return s, nil
}

// Replace returns a snapshot equal to s but for the given resources, which replace resources of the same
// type and name. Only they are encoded. A resource s does not have is an error: adding or removing
// resources changes the shape of the set, which NewSnapshot builds.
func (s *Snapshot) Replace(resources map[string][]types.Resource) (*Snapshot, error) {
	out := &Snapshot{types: make(map[string]*typeSet, len(s.types)), base: s, replaced: map[string][]string{}}
	for t, set := range s.types {
		out.types[t] = set
	}
	for typeURL, list := range resources {
		if len(list) == 0 {
			continue
		}
		parent := s.types[typeURL]
		if parent == nil {
			return nil, fmt.Errorf("%s: no such type in the snapshot", typeURL)
		}
		set := &typeSet{items: make(map[string]*encoded, len(list)), names: parent.names, parent: parent,
			depth: parent.depth + 1, own: parent.own + len(list), sum: parent.sum, size: parent.size}
		var names []string
		for _, r := range list {
			name := cache.GetResourceName(r)
			old := parent.get(name)
			if old == nil {
				return nil, fmt.Errorf("%s %q: not in the snapshot", typeURL, name)
			}
			if _, dup := set.items[name]; dup {
				return nil, fmt.Errorf("%s %q appears twice", typeURL, name)
			}
			e, err := encode(typeURL, name, r)
			if err != nil {
				return nil, err
			}
			set.items[name] = e
			set.sum += e.hash - old.hash
			set.size += len(e.any.Value) - len(old.any.Value)
			names = append(names, name)
		}
		if set.sum == parent.sum && set.size == parent.size && sameItems(set, parent) {
			continue // re-encoded to the same bytes (a cluster whose servers changed, say): keep the set
		}
		set.version = sumVersion(set.sum, len(set.names))
		// Every stream's ACK looks up each resource it wants: keep chains short. A small set is always
		// flat (copying it costs less than a few lookups per stream).
		if len(set.names) <= flatBelow || set.depth > maxDepth || set.own > len(set.names)/8 {
			set.flatten()
		}
		out.types[typeURL] = set
		out.replaced[typeURL] = names
	}
	return out, nil
}

// sameItems reports whether every item of the overlay t has the same version in parent.
func sameItems(t, parent *typeSet) bool {
	for n, e := range t.items {
		if parent.get(n).version != e.version {
			return false
		}
	}
	return true
}

// get returns the named item, or nil.
func (t *typeSet) get(name string) *encoded {
	for s := t; s != nil; s = s.parent {
		if e, ok := s.items[name]; ok {
			return e
		}
	}
	return nil
}

// flatten copies every item into the set itself and drops the parent: the flat root's map is cloned and
// the overlays applied oldest first.
func (t *typeSet) flatten() {
	var chain []*typeSet
	root := t
	for ; root.parent != nil; root = root.parent {
		chain = append(chain, root)
	}
	items := maps.Clone(root.items)
	for i := len(chain) - 1; i >= 0; i-- {
		for n, e := range chain[i].items {
			items[n] = e
		}
	}
	t.items, t.parent, t.depth, t.own = items, nil, 0, 0
}

// anys returns every item, in names order. The slice is shared: callers must not modify it.
func (t *typeSet) anys() []*anypb.Any {
	t.allOnce.Do(func() {
		t.all = make([]*anypb.Any, len(t.names))
		for i, n := range t.names {
			t.all[i] = t.get(n).any
		}
	})
	return t.all
}

// wireAll returns every item encoded as the resources field (2) of a DiscoveryResponse, in names order.
// The slice is shared: callers must not modify it.
func (t *typeSet) wireAll() []byte {
	t.wireOnce.Do(func() { t.wire = wireOf(t.anys()) })
	return t.wire
}

// wireOf encodes resources as the resources field (2) of a DiscoveryResponse (Anys) or of a
// DeltaDiscoveryResponse (Resources).
func wireOf[M proto.Message](resources []M) []byte {
	size := 0
	for _, a := range resources {
		size += 8 + proto.Size(a)
	}
	b := make([]byte, 0, size)
	for _, a := range resources {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(proto.Size(a)))
		var err error
		if b, err = (proto.MarshalOptions{}).MarshalAppend(b, a); err != nil {
			panic("groupcache: an encoded resource does not marshal: " + err.Error()) // an Any of bytes: cannot fail
		}
	}
	return b
}

// encodeAll encodes a list, on every CPU when it is long: a full publish of 10,000 upstreams encodes
// 20,000 resources, and each is independent of the others.
func encodeAll(typeURL string, list []types.Resource) ([]*encoded, error) {
	out := make([]*encoded, len(list))
	workers := min(runtime.GOMAXPROCS(0), len(list)/256+1)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(list); i += workers {
				e, err := encode(typeURL, cache.GetResourceName(list[i]), list[i])
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = e
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func encode(typeURL, name string, r types.Resource) (*encoded, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", typeURL, name, err)
	}
	countEncode(typeURL)
	sum := sha256.Sum256(b)
	e := &encoded{version: hex.EncodeToString(sum[:8]), any: &anypb.Any{TypeUrl: typeURL, Value: b}}
	// The item's hash covers its name and content; the type's version is the sum of its items' hashes, so
	// replacing one item updates it without visiting the others, and it does not depend on input order.
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(sum[:8])
	e.hash = binary.BigEndian.Uint64(h.Sum(nil))
	e.delta = &discovery.Resource{Name: name, Version: e.version, Resource: e.any}
	return e, nil
}

func sumVersion(sum uint64, n int) string {
	return strconv.FormatUint(sum, 16) + "-" + strconv.Itoa(n)
}

// Version returns the content version of a type ("" when the snapshot has none of it).
func (s *Snapshot) Version(typeURL string) string {
	if t := s.types[typeURL]; t != nil {
		return t.version
	}
	return ""
}

// Versions returns every type's version, for the admin API.
func (s *Snapshot) Versions() map[string]string {
	out := map[string]string{}
	for typeURL, t := range s.types {
		out[typeURL] = t.version
	}
	return out
}

// Size returns the encoded bytes of all resources of a type.
func (s *Snapshot) Size(typeURL string) int {
	if t := s.types[typeURL]; t != nil {
		return t.size
	}
	return 0
}

// Names returns the resource names of a type, sorted. The slice is shared: callers must not modify it.
func (s *Snapshot) Names(typeURL string) []string {
	if t := s.types[typeURL]; t != nil {
		return t.names
	}
	return nil
}

// changes returns, by type, the names whose resource differs between old and s (changed, added or
// removed); a type missing from the result did not change.
func (s *Snapshot) changes(old *Snapshot) map[string][]string {
	out := map[string][]string{}
	if old == nil {
		for t, set := range s.types {
			out[t] = set.names
		}
		return out
	}
	if s.base == old {
		for t, names := range s.replaced {
			cur, prev := s.types[t], old.types[t]
			if cur.version == prev.version {
				continue
			}
			for _, n := range names {
				if cur.get(n).version != prev.get(n).version {
					out[t] = append(out[t], n)
				}
			}
		}
		return out
	}
	for t, set := range s.types {
		prev := old.types[t]
		if prev == set || (prev != nil && prev.version == set.version) {
			continue
		}
		out[t] = diffNames(prev, set)
	}
	for t, prev := range old.types {
		if _, ok := s.types[t]; !ok {
			out[t] = prev.names
		}
	}
	return out
}

func diffNames(a, b *typeSet) []string {
	var out []string
	if a == nil {
		return b.names
	}
	for _, n := range b.names {
		if e := a.get(n); e == nil || e.version != b.get(n).version {
			out = append(out, n)
		}
	}
	for _, n := range a.names {
		if b.get(n) == nil {
			out = append(out, n)
		}
	}
	return out
}
