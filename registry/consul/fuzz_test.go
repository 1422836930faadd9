package consul

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/dynup/dynup/registry"
)

// goodKV is an upstream definition already in KV when a fuzzed key arrives.
const goodKV = `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["good.example.com"],"keepalive":8}`

// fileStore is a store with a file backend in a fresh directory; Consul's sources feed it through
// ReplaceConfig and SetDiscovered, as in Consul mode.
func fileStore(t *testing.T) *registry.Store {
	t.Helper()
	backend, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := registry.NewStore(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzKVDecode adds one arbitrary key and value under the prefix to a KV folder that holds a good
// upstream, decodes it as the KV watch does, and installs the result in a store: no panic; the good
// upstream is never changed or dropped; a key that is rejected (dropped with a warning) or not ours
// leaves every served upstream as it was; an accepted key becomes one valid upstream of its name.
func FuzzKVDecode(f *testing.F) {
	for _, seed := range []struct{ key, value string }{
		{"upstreams/web", `{"servers":[{"host":"10.0.5.108","port":4001},{"host":"10.0.5.109","port":4001}],"keepalive":20}`},
		{"upstreams/web", `{"lb":{"policy":"ring_hash","hash_keys":[{"header":"x-user"}]},"domains":["web","img.example.com"]}`},
		{"upstreams/web", `{"servers":[{"host":"10.0.0.1","port":80}],"colour":"blue"}`},
		{"upstreams/web", `{"cluster":[{"servers":[{"host":"10.0.0.1","port":80}]},{"servers":[{"host":"::1","port":81}]}]}`},
		{"upstreams/web", `{"mode":"hash","typ":"http","http_opts":{"query":"GET /s HTTP/1.1\r\n\r\n"}}`},
		{"upstreams/web", `server 10.0.0.1;`},
		{"upstreams/web", `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["GOOD.example.com"]}`},
		{"upstreams/zzz", `{"servers":[{"host":"10.0.0.2","port":80}],"domains":["good.example.com"]}`},
		{"upstreams/a", `{"servers":[{"host":"10.0.0.2","port":80}],"domains":["good.example.com"]}`},
		{"upstreams/web/nested", `{}`}, {"upstreams/", `{}`}, {"upstreams/bad name", `{}`}, {"other/x", `{}`},
		{"lua/deny", "function envoy_on_request(h) if h:headers():get(':method') == 'DELETE' then h:respond({[':status']='403'}, '') end end"},
		{"lua/script.admin.example.com", "function envoy_on_request(h) end"},
		{"lua/version", "3"}, {"lua/bad", "function envoy_on_request(h) ngx.exit(403) end"},
		{"lua/json", `{"active":1,"versions":[{"version":1,"source":"function envoy_on_request(h) end","applies_to":{"all":true}}]}`},
	} {
		f.Add(seed.key, []byte(seed.value))
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		if key == "upstreams/good" {
			return // replacing the good key is an ordinary edit, not what this checks
		}
		kv := NewKV(nil, "dynup/", Options{}) // decode needs no Consul
		good := &api.KVPair{Key: "dynup/upstreams/good", Value: []byte(goodKV), ModifyIndex: 5}
		store := fileStore(t)
		before := store.ReplaceConfig(kv.decode(api.KVPairs{good}, 0), KVSource, kv.Warnings(), nil)
		fuzzed := &api.KVPair{Key: "dynup/" + key, Value: value, ModifyIndex: 6}
		after := store.ReplaceConfig(kv.decode(api.KVPairs{good, fuzzed}, 0), KVSource, kv.Warnings(), nil)

		name, isUpstream := strings.CutPrefix(key, "upstreams/")
		isUpstream = isUpstream && name != "" && !strings.Contains(name, "/")
		rejected := false
		for _, w := range after.Warnings {
			if w.Object == "consul-kv/"+fuzzed.Key || w.Object == "upstream/"+name {
				rejected = true
			}
		}
		var others []registry.Upstream
		var added *registry.Upstream
		for i, u := range after.Upstreams {
			if isUpstream && u.Name == name {
				added = &after.Upstreams[i]
				continue
			}
			others = append(others, u)
		}
		if g, w := asJSON(t, others), asJSON(t, before.Upstreams); g != w {
			t.Fatalf("key %q changed other upstreams (warnings %v)\n got %s\nwant %s", fuzzed.Key, after.Warnings, g, w)
		}
		if rejected || !isUpstream {
			if added != nil {
				t.Fatalf("key %q was rejected but its upstream is served", fuzzed.Key)
			}
			if strings.HasPrefix(key, "lua/") {
				return // snippets are the Lua tests' business; the upstreams stood, which is what counts here
			}
			if after.Hash != before.Hash {
				t.Fatalf("a rejected key %q changed the served state", fuzzed.Key)
			}
			return
		}
		if added == nil {
			t.Fatalf("key %q neither rejected nor served (warnings %v)", fuzzed.Key, after.Warnings)
		}
		if err := added.Validate(); err != nil {
			t.Fatalf("served upstream %s does not validate: %v", name, err)
		}
	})
}

// FuzzServiceEntries decodes an arbitrary /v1/health/service answer, turns it into servers as the
// catalog watch does and gives them to a store: no panic; every server is an IP address and port, once,
// in order; skipped instances are reported; a configured upstream whose domain the service claims
// stays as it was.
func FuzzServiceEntries(f *testing.F) {
	for _, seed := range []string{
		`[{"Node":{"Node":"n1","Address":"192.0.2.1","Meta":{"zone":"z2"}},"Service":{"ID":"a","Service":"web","Address":"10.0.0.1","Port":80,
		   "Weights":{"Passing":3,"Warning":1},"Meta":{"zone":"z1","dynup-domains":"Web.example.com, www.example.com"}},"Checks":[{"Status":"passing"}]},
		  {"Node":{"Node":"n2","Address":"192.0.2.2"},"Service":{"ID":"b","Service":"web","Address":"10.0.0.2","Port":80,
		   "Weights":{"Passing":3,"Warning":1}},"Checks":[{"Status":"warning"}]},
		  {"Node":{"Node":"n3","Address":"192.0.2.3"},"Service":{"ID":"c","Service":"web","Address":"10.0.0.3","Port":80},"Checks":[{"Status":"critical"}]},
		  {"Node":{"Node":"n4","Address":"192.0.2.4"},"Service":{"ID":"d","Service":"web","Address":"","Port":8080,"Meta":{"weight":"7"}},"Checks":[]},
		  {"Node":{"Node":"n5","Address":"192.0.2.5"},"Service":{"ID":"e","Service":"web","Address":"web.internal","Port":80},"Checks":[{"Status":"passing"}]}]`,
		`[{"Node":{"Address":"10.0.0.1"},"Service":{"Port":80}},{"Node":{"Address":"10.0.0.1"},"Service":{"Port":80}}]`,
		`[{"Node":{"Address":"::1"},"Service":{"Port":65535,"Meta":{"dynup-domains":"good.example.com"}}}]`,
		`[{"Node":{"Address":"10.0.0.1"},"Service":{"Port":0}},{"Node":{"Address":"10.0.0.1"},"Service":{"Port":70000}}]`,
		`[{"Node":{"Address":"fe80::1%eth0"},"Service":{"Port":80}}]`,
		`[{"Node":{"Address":"10.0.0.1"},"Service":{"Port":80,"Weights":{"Passing":-5}},"Checks":[{"Status":"maintenance"}]}]`,
		`[]`, `null`, `[null]`, `[{}]`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var entries []*api.ServiceEntry
		if json.Unmarshal(data, &entries) != nil {
			return // the API client refuses it; the watch keeps its last good servers
		}
		ds, skipped := servicesFromEntries(entries)
		entries = slices.DeleteFunc(entries, func(e *api.ServiceEntry) bool { return e == nil || e.Node == nil || e.Service == nil })
		seen := map[netip.AddrPort]bool{}
		for i, s := range ds.Servers {
			addr, err := netip.ParseAddr(s.Host)
			if err != nil || s.Port < 1 || s.Port > 65535 || s.Source != "consul" || s.Weight < 1 {
				t.Fatalf("server %d is %+v", i, s)
			}
			ap := netip.AddrPortFrom(addr, uint16(s.Port))
			if seen[ap] {
				t.Fatalf("server %s twice", ap)
			}
			seen[ap] = true
			if i > 0 && (ds.Servers[i-1].Host > s.Host || ds.Servers[i-1].Host == s.Host && ds.Servers[i-1].Port > s.Port) {
				t.Fatalf("servers out of order: %+v", ds.Servers)
			}
		}
		for _, e := range entries {
			host := e.Service.Address
			if host == "" {
				host = e.Node.Address
			}
			st := e.Checks.AggregatedStatus()
			_, err := netip.ParseAddr(host)
			if (st == api.HealthPassing || st == api.HealthWarning) && (err != nil || e.Service.Port < 1 || e.Service.Port > 65535) &&
				!strings.Contains(skipped, "instance "+e.Service.ID+":") {
				t.Fatalf("instance %q (%q:%d) was left out without a word: %q", e.Service.ID, host, e.Service.Port, skipped)
			}
		}
		for _, d := range ds.Domains {
			if d == "" || d != strings.ToLower(strings.TrimSpace(d)) {
				t.Fatalf("domain %q", d)
			}
		}

		store := fileStore(t)
		good := registry.Upstream{Name: "good", Domains: []string{"good.example.com"}, Servers: []registry.Server{{Host: "10.9.9.9", Port: 9}}}
		// Installed as the KV watch would (Consul mode): no file write per case.
		before := store.ReplaceConfig(registry.Config{Upstreams: map[string]registry.Upstream{"good": good}}, KVSource, nil, nil)
		after := store.SetDiscovered(CatalogSource, registry.Discovered{"web": ds})
		g, ok := after.Upstream("good")
		w, _ := before.Upstream("good")
		if !ok || asJSON(t, g) != asJSON(t, w) {
			t.Fatalf("the catalog changed a configured upstream: %+v", g)
		}
		if web, ok := after.Upstream("web"); ok && len(web.Servers) != len(ds.Servers) {
			t.Fatalf("web serves %d servers, the catalog found %d", len(web.Servers), len(ds.Servers))
		}
	})
}
