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

// contentHash covers what translation reads. Without snippets it is the hash of the upstreams alone, as
// it was before snippets existed, so replicas of different builds agree while no snippet is active.
//
// It is the hash of json.Marshal(ups), made from each upstream's encoding. A state built from the
// previous one's parts (see buildChanged) passes the previous encodings and the upstreams it rebuilt
// (fresh): the others are taken as they are, since encoding 10,000 upstreams on every change cost
// ~100 ms. The encodings of ups are returned for the next state.
func contentHash(ups []Upstream, snippets []ActiveSnippet, prev map[string][]byte, fresh map[string]bool) (string, map[string][]byte) {
	encoded := make(map[string][]byte, len(ups))
	h := sha256.New()
	h.Write([]byte{'['})
	for i := range ups {
		u := &ups[i]
		b, ok := prev[u.Name]
		if !ok || fresh[u.Name] {
			var err error
			if b, err = json.Marshal(u); err != nil {
				panic("registry: upstreams must marshal: " + err.Error()) // plain data; cannot fail
			}
		}
		encoded[u.Name] = b
		if i > 0 {
			h.Write([]byte{','})
		}
		h.Write(b)
	}
	if ups == nil {
		h.Reset()
		h.Write([]byte("null"))
	} else {
		h.Write([]byte{']'})
	}
	if len(snippets) > 0 {
		sb, err := json.Marshal(snippets)
		if err != nil {
			panic("registry: snippets must marshal: " + err.Error())
		}
		h.Write([]byte{'\n'})
		h.Write(sb)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), encoded
}
