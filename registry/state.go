package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"time"
)

// State is one immutable view of every upstream: the input of translation. Never modify a published State.
type State struct {
	// Revision counts accepted changes in this process (and in its data dir); it orders changes.
	Revision uint64 `json:"revision"`
	// Hash is derived from content only, so the same upstreams have the same hash after a restart and on
	// every replica.
	Hash      string     `json:"hash"`
	Upstreams []Upstream `json:"upstreams"` // sorted by name
	// Snippets are the active Lua snippets, validated, in the order they run on a host (Order, then name).
	Snippets []ActiveSnippet `json:"snippets,omitempty"`
	// Warnings name objects that were dropped or changed while building this state (never fatal).
	Warnings []Warning `json:"warnings,omitempty"`
	// Change describes what this revision changed, relative to the previous one.
	Change Change `json:"change"`
}

// Warning is a per-object problem: the object is dropped, the rest of the state stands.
type Warning struct {
	Object string `json:"object"` // e.g. "upstream/imgprocess", "consul/service/web"
	Msg    string `json:"msg"`
}

// Change describes one accepted write. Its Revision is the change id the admin API returns.
type Change struct {
	Revision   uint64    `json:"revision"`
	Source     string    `json:"source"`             // admin, file, consul-catalog, consul-kv
	Upstreams  []string  `json:"upstreams"`          // names whose definition or servers changed (added, updated, removed)
	Snippets   []string  `json:"snippets,omitempty"` // Lua snippets staged, activated or removed
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// Upstream returns the named upstream.
func (s *State) Upstream(name string) (*Upstream, bool) {
	i := sort.Search(len(s.Upstreams), func(i int) bool { return s.Upstreams[i].Name >= name })
	if i < len(s.Upstreams) && s.Upstreams[i].Name == name {
		return &s.Upstreams[i], true
	}
	return nil, false
}

// Names lists the upstream names in order.
func (s *State) Names() []string {
	names := make([]string, len(s.Upstreams))
	for i := range s.Upstreams {
		names[i] = s.Upstreams[i].Name
	}
	return names
}

// upstreamDigest is the SHA-256 of one upstream's JSON: the part of the content hash it contributes.
type upstreamDigest [sha256.Size]byte

func digestUpstream(u *Upstream) upstreamDigest {
	b, err := json.Marshal(u)
	if err != nil {
		panic("registry: upstreams must marshal: " + err.Error()) // plain data; cannot fail
	}
	return sha256.Sum256(b)
}

// contentHash covers what translation reads: the hash of each upstream's digest, in order, then of the
// active snippets. digests[i] must be digestUpstream(&ups[i]).
//
// It is built from per-upstream digests so that a state built from the previous one's parts (see
// buildChanged) hashes only the upstreams it rebuilt: hashing the JSON of all 10,000 upstreams cost ~9 ms on
// every change. (Until December 2026 it was the hash of the whole JSON, so a replica running an older
// build shows another version string for the same content.)
func contentHash(digests []upstreamDigest, snippets []ActiveSnippet) string {
	h := sha256.New()
	h.Write([]byte("dynup state v2\n"))
	for i := range digests {
		h.Write(digests[i][:])
	}
	if len(snippets) > 0 {
		sb, err := json.Marshal(snippets)
		if err != nil {
			panic("registry: snippets must marshal: " + err.Error())
		}
		h.Write([]byte{'\n'})
		h.Write(sb)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
