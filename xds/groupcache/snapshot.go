// Package groupcache serves xDS from one pre-encoded snapshot per node group.
//
// go-control-plane's SnapshotCache keeps a snapshot per node and encodes every resource again for every
// stream; in ADS mode it also never answers a request that names only some resources, which is what
// proxyless gRPC clients send. This cache keys snapshots by group, encodes each resource once when the
// snapshot is built, answers named subsets, and versions every resource by its content, so identical
// state has identical versions after a restart and on every replica.
package groupcache

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
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

// Snapshot is the encoded resources of one group. It is immutable once built.
type Snapshot struct {
	types map[string]*typeSet
}

type typeSet struct {
	version string
	names   []string // sorted
	items   map[string]encoded
}

type encoded struct {
	version string
	any     *anypb.Any
}

// NewSnapshot encodes resources (by type URL). Each resource is marshalled once, deterministically.
func NewSnapshot(resources map[string][]types.Resource) (*Snapshot, error) {
	s := &Snapshot{types: map[string]*typeSet{}}
	marshal := proto.MarshalOptions{Deterministic: true}
	for typeURL, list := range resources {
		set := &typeSet{items: make(map[string]encoded, len(list))}
		for _, r := range list {
			name := cache.GetResourceName(r)
			if _, dup := set.items[name]; dup {
				return nil, fmt.Errorf("%s %q appears twice", typeURL, name)
			}
			b, err := marshal.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", typeURL, name, err)
			}
			set.items[name] = encoded{version: hashBytes(b), any: &anypb.Any{TypeUrl: typeURL, Value: b}}
			set.names = append(set.names, name)
		}
		sort.Strings(set.names)
		set.version = set.contentVersion()
		s.types[typeURL] = set
	}
	return s, nil
}

// contentVersion hashes the names and versions of all resources of a type.
func (t *typeSet) contentVersion() string {
	h := sha256.New()
	for _, n := range t.names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(t.items[n].version))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
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
	n := 0
	if t := s.types[typeURL]; t != nil {
		for _, e := range t.items {
			n += len(e.any.Value)
		}
	}
	return n
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
