package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
	"github.com/dynup/dynup/registry/slardar"
)

// KVSource is the name under which KV configuration enters the store.
const KVSource = "consul-kv"

// KV keeps upstream definitions in Consul KV at <prefix>upstreams/<name>, as the admin API's JSON (Slardar's
// format is read too), and Lua snippets at <prefix>lua/<name> (kv_lua.go). It is the store's backend in
// Consul mode: admin writes go to KV with check-and-set, and the watch brings every replica's writes (and
// hand edits) into the store. One blocking query on the whole prefix sees both folders at one index.
type KV struct {
	client *api.Client
	prefix string
	opts   Options
	status *statusCell

	mu         sync.Mutex
	indexes    map[string]uint64 // ModifyIndex of each upstream's key, for check-and-set
	luaIndexes map[string]uint64 // ModifyIndex of each snippet's key
	lastWrite  uint64            // the index of our newest write; older watch results are stale
	warnings   []registry.Warning
}

// NewKV returns the KV backend under prefix (e.g. "dynup/").
func NewKV(client *api.Client, prefix string, opts Options) *KV {
	return &KV{client: client, prefix: prefix, opts: opts.withDefaults(), status: newStatus(KVSource), indexes: map[string]uint64{},
		luaIndexes: map[string]uint64{}}
}

func (k *KV) upstreamsPrefix() string { return k.prefix + "upstreams/" }

// Name says where configuration lives.
func (k *KV) Name() string { return "consul-kv:" + k.prefix }

// Load reads every upstream and snippet. A key that does not decode is dropped with a warning, never fatal.
func (k *KV) Load(ctx context.Context) (registry.Config, uint64, error) {
	pairs, meta, err := k.client.KV().List(k.prefix, (&api.QueryOptions{AllowStale: k.opts.Stale}).WithContext(ctx))
	if err != nil {
		k.status.fail(err)
		return registry.Config{}, 0, err
	}
	cfg := k.decode(pairs, meta.LastIndex)
	k.status.ok(meta.LastIndex)
	return cfg, 0, nil
}

// decode turns KV pairs read at index into configuration and remembers their modify indexes. Keys outside
// the upstreams and lua folders are not ours and are ignored.
func (k *KV) decode(pairs api.KVPairs, index uint64) registry.Config {
	cfg := registry.Config{Upstreams: map[string]registry.Upstream{}}
	indexes := map[string]uint64{}
	var warnings []registry.Warning
	var luaPairs api.KVPairs
	for _, p := range pairs {
		if strings.HasPrefix(p.Key, k.luaPrefix()) {
			luaPairs = append(luaPairs, p)
			continue
		}
		name, ok := strings.CutPrefix(p.Key, k.upstreamsPrefix())
		if !ok || name == "" || strings.Contains(name, "/") {
			continue // the folder itself, something nested, or not an upstream
		}
		indexes[name] = p.ModifyIndex
		u, err := slardar.Decode(name, p.Value, nil)
		if err == nil {
			u.Normalize()
			err = u.Validate()
		}
		if err != nil {
			warnings = append(warnings, registry.Warning{Object: "consul-kv/" + p.Key, Msg: "dropped: " + err.Error()})
			continue
		}
		cfg.Upstreams[name] = u
	}
	snippets, luaIndexes, luaWarnings := k.decodeSnippets(luaPairs)
	cfg.Snippets = snippets
	k.mu.Lock()
	// A read older than our newest write must not take back the indexes that write set: a write of ours
	// can land between the watch's freshness check and this point, and the next write of the same key
	// would then be refused as stale (seen as a 409 on an admin write under load).
	if index >= k.lastWrite {
		k.indexes, k.luaIndexes, k.warnings = indexes, luaIndexes, append(warnings, luaWarnings...)
	}
	k.mu.Unlock()
	return cfg
}

// Save writes the changed upstreams and snippets in one transaction, each with check-and-set on the modify
// index we last saw: if anyone else changed a key since, nothing is written and the caller gets a conflict.
func (k *KV) Save(ctx context.Context, next registry.Config, c registry.Change) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ops api.TxnOps
	for _, name := range c.Upstreams {
		key := k.upstreamsPrefix() + name
		u, ok := next.Upstreams[name]
		if !ok {
			ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: key, Index: k.indexes[name]}})
			continue
		}
		value, err := json.Marshal(storedForm(u))
		if err != nil {
			return err
		}
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: key, Value: value, Index: k.indexes[name]}})
	}
	luaOps, err := k.snippetOps(next, c.Snippets)
	if err != nil {
		return err
	}
	ops = append(ops, luaOps...)
	ok, resp, _, err := k.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	if !ok {
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, e.What)
		}
		return &registry.ConflictError{Msg: fmt.Sprintf("changed in Consul KV since this dynup last read it (%s); read it again and retry",
			strings.Join(msgs, "; "))}
	}
	for _, r := range resp.Results {
		if r.KV == nil {
			continue
		}
		k.lastWrite = max(k.lastWrite, r.KV.ModifyIndex)
		if name, ok := strings.CutPrefix(r.KV.Key, k.luaPrefix()); ok {
			k.luaIndexes[name] = r.KV.ModifyIndex
		} else {
			k.indexes[strings.TrimPrefix(r.KV.Key, k.upstreamsPrefix())] = r.KV.ModifyIndex
		}
	}
	for _, name := range c.Upstreams {
		if _, ok := next.Upstreams[name]; !ok {
			delete(k.indexes, name)
		}
	}
	for _, name := range c.Snippets {
		if _, ok := next.Snippets[name]; !ok {
			delete(k.luaIndexes, name)
		}
	}
	return nil
}

// storedForm is what goes into KV: the definition without what the store derives (server sources).
func storedForm(u registry.Upstream) registry.Upstream {
	u.Servers = append([]registry.Server(nil), u.Servers...)
	for i := range u.Servers {
		u.Servers[i].Source = ""
	}
	return u
}

// Run watches the prefix (upstreams and lua folders) and replaces the store's configuration with each new
// version.
func (k *KV) Run(ctx context.Context, store *registry.Store) {
	blockingQuery(ctx, k.opts, k.status, func(q *api.QueryOptions) (uint64, error) {
		pairs, meta, err := k.client.KV().List(k.prefix, q)
		if err != nil {
			return 0, err
		}
		index := meta.LastIndex
		fresh := func() bool {
			k.mu.Lock()
			defer k.mu.Unlock()
			return index >= k.lastWrite
		}
		if !fresh() {
			return index, nil // our own newer write is already applied; the next round brings it
		}
		cfg := k.decode(pairs, index)
		store.ReplaceConfig(cfg, KVSource, k.Warnings(), fresh)
		return index, nil
	})
}

// Warnings lists keys that were dropped because they did not decode.
func (k *KV) Warnings() []registry.Warning {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := append([]registry.Warning(nil), k.warnings...)
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out
}

// Status reports the KV watch.
func (k *KV) Status() registry.SourceStatus { return k.status.get() }
