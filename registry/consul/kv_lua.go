package consul

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
)

// Lua snippets live at <prefix>lua/<name>, one key per snippet holding every kept version and the active
// one as JSON (kvSnippet). A key holding raw Lua, as Slardar stored its scripts, is read as a snippet with
// one active version; only Slardar's per-host names ("script.<host>") say where such code applies, so
// other raw keys (Slardar's modules) are dropped with a warning. Slardar's <prefix>lua/version is ignored.
// The store validates every version on load: a hand edit that does not validate is never served.

func (k *KV) luaPrefix() string { return k.prefix + "lua/" }

// kvSnippet is the stored form: what users own, without what the store derives (validation verdicts).
type kvSnippet struct {
	Active   int                `json:"active"`
	Versions []kvSnippetVersion `json:"versions"`
}

type kvSnippetVersion struct {
	Version     int                `json:"version"`
	Source      string             `json:"source"`
	MD5         string             `json:"md5,omitempty"` // informational; the store recomputes it
	CreatedAt   time.Time          `json:"created_at,omitzero"`
	ActivatedAt time.Time          `json:"activated_at,omitzero"`
	AppliesTo   registry.Placement `json:"applies_to"`
	Order       int                `json:"order"`
}

// slardarVersionKey is Slardar's marker of the scripts' version, not a script.
const slardarVersionKey = "version"

func (k *KV) decodeSnippets(pairs api.KVPairs) (map[string]registry.Snippet, map[string]uint64, []registry.Warning) {
	snippets := map[string]registry.Snippet{}
	indexes := map[string]uint64{}
	var warnings []registry.Warning
	for _, p := range pairs {
		name := strings.TrimPrefix(p.Key, k.luaPrefix())
		if name == "" || name == slardarVersionKey || strings.Contains(name, "/") {
			continue
		}
		indexes[name] = p.ModifyIndex
		sn, err := decodeSnippet(name, p.Value)
		if err != nil {
			warnings = append(warnings, registry.Warning{Object: "consul-kv/" + p.Key, Msg: "dropped: " + err.Error()})
			continue
		}
		snippets[name] = sn
	}
	return snippets, indexes, warnings
}

func decodeSnippet(name string, value []byte) (registry.Snippet, error) {
	if err := registry.ValidateName(name); err != nil {
		return registry.Snippet{}, err
	}
	trimmed := bytes.TrimSpace(value)
	if len(trimmed) == 0 || trimmed[0] != '{' { // valid Lua never starts with '{'
		p, ok := registry.DefaultPlacement(name)
		if !ok {
			return registry.Snippet{}, fmt.Errorf("raw Lua applies to a host only under Slardar's name %s<host>; store dynup's JSON form ({\"active\":1,\"versions\":[{\"version\":1,\"source\":...,\"applies_to\":{...}}]}) to say where it applies", registry.ScriptPrefix)
		}
		return registry.Snippet{Name: name, Active: 1, Versions: []registry.SnippetVersion{{Version: 1, Source: string(value), AppliesTo: p}}}, nil
	}
	var stored kvSnippet
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&stored); err != nil {
		return registry.Snippet{}, fmt.Errorf("not a snippet: %w", err)
	}
	sn := registry.Snippet{Name: name, Active: stored.Active}
	seen := map[int]bool{}
	for _, v := range stored.Versions {
		if v.Version <= 0 || seen[v.Version] {
			return registry.Snippet{}, fmt.Errorf("version numbers must be positive and distinct (got %d twice or below 1)", v.Version)
		}
		seen[v.Version] = true
		sn.Versions = append(sn.Versions, registry.SnippetVersion{Version: v.Version, Source: v.Source, CreatedAt: v.CreatedAt,
			ActivatedAt: v.ActivatedAt, AppliesTo: v.AppliesTo, Order: v.Order})
	}
	return sn, nil
}

func storedSnippet(sn registry.Snippet) kvSnippet {
	out := kvSnippet{Active: sn.Active, Versions: make([]kvSnippetVersion, 0, len(sn.Versions))}
	for _, v := range sn.Versions {
		out.Versions = append(out.Versions, kvSnippetVersion{Version: v.Version, Source: v.Source, MD5: v.MD5,
			CreatedAt: v.CreatedAt, ActivatedAt: v.ActivatedAt, AppliesTo: v.AppliesTo, Order: v.Order})
	}
	return out
}

// snippetOps are the check-and-set operations that write the named snippets (deleting those gone from
// next). Called with k.mu held.
func (k *KV) snippetOps(next registry.Config, names []string) (api.TxnOps, error) {
	var ops api.TxnOps
	for _, name := range names {
		key := k.luaPrefix() + name
		sn, ok := next.Snippets[name]
		if !ok {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: key, Index: k.luaIndexes[name]}})
			continue
		}
		value, err := json.MarshalIndent(storedSnippet(sn), "", "  ")
		if err != nil {
			return nil, err
		}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: value, Index: k.luaIndexes[name]}})
	}
	return ops, nil
}
