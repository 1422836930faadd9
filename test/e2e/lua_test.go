package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	luav3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/dynup/dynup/test/consulagent"
	"github.com/dynup/dynup/test/harness"
	"github.com/dynup/dynup/xds/translate"
)

// seedExample is the seed's Lua example as shipped in luafilters/examples.
func seedExample(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "luafilters", "examples", "deny_delete_admin.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostLua returns each virtual host's inline Lua program in an RDS response ("" for none).
func hostLua(t *testing.T, r *discovery.DiscoveryResponse) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range r.Resources {
		rc := &route.RouteConfiguration{}
		if err := a.UnmarshalTo(rc); err != nil {
			t.Fatal(err)
		}
		for _, vh := range rc.VirtualHosts {
			out[vh.Name] = ""
			if cfg := vh.TypedPerFilterConfig[translate.LuaFilterName]; cfg != nil {
				per := &luav3.LuaPerRoute{}
				if err := cfg.UnmarshalTo(per); err != nil {
					t.Fatal(err)
				}
				out[vh.Name] = per.GetSourceCode().GetInlineString()
			}
		}
	}
	return out
}

// nextRoutes waits for the RDS response for which want holds (earlier pushes are ACKed and skipped).
func nextRoutes(t *testing.T, envoy *harness.ADSClient, want func(map[string]string) error) *discovery.DiscoveryResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := envoy.Next()
		if r.TypeUrl != resource.RouteType {
			envoy.Ack(r)
			continue
		}
		err := want(hostLua(t, r))
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching route table: %v", err)
		}
		envoy.Ack(r, translate.HTTPRouteName)
	}
}

func runs(snippetVersion string) func(map[string]string) error {
	return func(lua map[string]string) error {
		if !strings.Contains(lua["admin"], snippetVersion) {
			return fmt.Errorf("admin host runs %q, want %s", firstLine(lua["admin"]), snippetVersion)
		}
		if lua["web"] != "" {
			return fmt.Errorf("web host got Lua: %q", firstLine(lua["web"]))
		}
		return nil
	}
}

func firstLine(s string) string { before, _, _ := strings.Cut(s, "\n"); return before }

func changeOf(t *testing.T, body []byte) float64 {
	t.Helper()
	var m struct{ Change float64 }
	if err := json.Unmarshal(body, &m); err != nil || m.Change == 0 {
		t.Fatalf("no change id in %s", body)
	}
	return m.Change
}

// The lifecycle over HTTP against a real dynup, with a simulated Envoy on ADS: bad snippets are refused
// with their line and stored nowhere; a good one is staged, dry-run, activated (the Envoy's route table
// gets it on the admin host only), replaced, rolled back, NACKed (the NACK names the snippet), survives a
// restart, and is deleted.
func TestLuaLifecycle(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	d.MustDo(t, http.MethodPost, "/upstream/admin", `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["admin.upyun.com"]}`)
	d.MustDo(t, http.MethodPost, "/upstream/web", `{"servers":[{"host":"10.0.0.2","port":80}],"domains":["www.upyun.com"]}`)
	envoy := harness.DialADS(t, d.XDSAddr, "envoy-1", "")
	envoy.Subscribe(resource.RouteType, translate.HTTPRouteName)
	first := nextRoutes(t, envoy, func(lua map[string]string) error {
		if lua["admin"] != "" || lua["web"] != "" {
			return fmt.Errorf("Lua before any snippet: %v", lua)
		}
		return nil
	})
	envoy.Ack(first, translate.HTTPRouteName)

	for _, bad := range []struct{ body, msg string }{
		{"function envoy_on_request(h)\n  if then\nend", `"line":2`},
		{"function envoy_on_request(request_handle)\n  ngx.exit(403)\nend", `"line":2`},
		{"function envoy_on_request(h)\n  h:headers():get(':path')\n  h:respnd({[':status']='403'}, '')\nend", `"line":3`},
	} {
		code, body := d.Do(t, http.MethodPost, "/lua/deny_delete_admin?domains=admin.upyun.com", bad.body)
		if code != http.StatusBadRequest || !strings.Contains(string(body), bad.msg) {
			t.Fatalf("bad snippet %q: %d %s, want 400 with %s", bad.body, code, body, bad.msg)
		}
	}
	if code, body := d.Do(t, http.MethodGet, "/lua/deny_delete_admin", ""); code != http.StatusNotFound {
		t.Fatalf("a rejected snippet was stored: %d %s", code, body)
	}

	src := seedExample(t)
	d.MustDo(t, http.MethodPost, "/lua/deny_delete_admin?domains=admin.upyun.com", src)
	var dry struct {
		Result struct {
			Action  string `json:"action"`
			Respond struct {
				Status int    `json:"status"`
				Body   string `json:"body"`
			} `json:"respond"`
		} `json:"result"`
		AppliesToHost bool `json:"applies_to_host"`
	}
	if err := json.Unmarshal(d.MustDo(t, http.MethodPost, "/lua/deny_delete_admin/test",
		`{"method":"DELETE","path":"/users/7","headers":{"host":"admin.upyun.com"}}`), &dry); err != nil {
		t.Fatal(err)
	}
	if dry.Result.Action != "respond" || dry.Result.Respond.Status != 403 || !dry.AppliesToHost {
		t.Fatalf("dry run of the seed example: %+v", dry)
	}

	d.MustDo(t, http.MethodPut, "/lua/deny_delete_admin", "")
	r := nextRoutes(t, envoy, runs("deny_delete_admin@v1"))
	if !strings.Contains(hostLua(t, r)["admin"], src) {
		t.Fatal("the admin host's program does not contain the snippet's source verbatim")
	}
	envoy.Ack(r, translate.HTTPRouteName)

	// v2, then a rollback to v1.
	d.MustDo(t, http.MethodPost, "/lua/deny_delete_admin", strings.Replace(src, "403", "405", 1))
	d.MustDo(t, http.MethodPut, "/lua/deny_delete_admin", "")
	envoy.Ack(nextRoutes(t, envoy, runs("deny_delete_admin@v2")), translate.HTTPRouteName)
	d.MustDo(t, http.MethodPut, "/lua/deny_delete_admin?version=1", "")
	envoy.Ack(nextRoutes(t, envoy, runs("deny_delete_admin@v1")), translate.HTTPRouteName)

	// The Envoy rejects v3: the NACK is shown on the snippet, naming the change that activated it.
	d.MustDo(t, http.MethodPost, "/lua/deny_delete_admin", strings.Replace(src, "403", "451", 1))
	change := changeOf(t, d.MustDo(t, http.MethodPut, "/lua/deny_delete_admin", ""))
	envoy.Nack(nextRoutes(t, envoy, runs("deny_delete_admin@v3")), "lua: rejected by the test", translate.HTTPRouteName)
	harness.Until(t, 10*time.Second, func() error {
		var got struct {
			RejectedBy []struct {
				Node    string    `json:"node"`
				Detail  string    `json:"detail"`
				Changes []float64 `json:"changes"`
			} `json:"rejected_by"`
		}
		d.GetJSON(t, "/lua/deny_delete_admin", &got)
		if len(got.RejectedBy) != 1 || got.RejectedBy[0].Node != "envoy-1" || got.RejectedBy[0].Detail != "lua: rejected by the test" ||
			len(got.RejectedBy[0].Changes) == 0 || got.RejectedBy[0].Changes[len(got.RejectedBy[0].Changes)-1] != change {
			return fmt.Errorf("rejected_by %+v, want envoy-1 and change %v", got.RejectedBy, change)
		}
		return nil
	})

	// A restart keeps every version and the active one.
	d.Restart(t)
	var after struct {
		Snippet struct {
			Active int `json:"active"`
		} `json:"snippet"`
		Versions []struct {
			Version int    `json:"version"`
			MD5     string `json:"md5"`
		} `json:"versions"`
	}
	d.GetJSON(t, "/lua/deny_delete_admin", &after)
	if after.Snippet.Active != 3 || len(after.Versions) != 3 || after.Versions[2].MD5 == "" {
		t.Fatalf("after restart: %+v", after)
	}
	fresh := harness.DialADS(t, d.XDSAddr, "envoy-2", "")
	fresh.Subscribe(resource.RouteType, translate.HTTPRouteName)
	fresh.Ack(nextRoutes(t, fresh, runs("deny_delete_admin@v3")), translate.HTTPRouteName)

	d.MustDo(t, http.MethodDelete, "/lua/deny_delete_admin", "")
	nextRoutes(t, fresh, func(lua map[string]string) error {
		if lua["admin"] != "" {
			return fmt.Errorf("admin host still runs %q", firstLine(lua["admin"]))
		}
		return nil
	})
	if code, _ := d.Do(t, http.MethodGet, "/lua/deny_delete_admin", ""); code != http.StatusNotFound {
		t.Fatalf("after delete: %d", code)
	}
}

// Consul mode: a snippet staged and activated on one replica lands in KV under <prefix>lua/ and the other
// replica serves it too.
func TestLuaConsulReplicas(t *testing.T) {
	agent := consulagent.Start(t)
	one := consulDynup(t, agent)
	two := consulDynup(t, agent)
	one.MustDo(t, http.MethodPost, "/upstream/admin", `{"servers":[{"host":"10.0.0.1","port":80}],"domains":["admin.upyun.com"]}`)
	one.MustDo(t, http.MethodPost, "/upstream/web", `{"servers":[{"host":"10.0.0.2","port":80}],"domains":["www.upyun.com"]}`)
	one.MustDo(t, http.MethodPost, "/lua/deny_delete_admin?domains=admin.upyun.com", seedExample(t))
	one.MustDo(t, http.MethodPut, "/lua/deny_delete_admin", "")
	pair, _, err := agent.Client(t).KV().Get("dynup/lua/deny_delete_admin", nil)
	if err != nil || pair == nil || !strings.Contains(string(pair.Value), `"active": 1`) {
		t.Fatalf("KV: %v %v", pair, err)
	}
	envoy := harness.DialADS(t, two.XDSAddr, "envoy-on-two", "")
	envoy.Subscribe(resource.RouteType, translate.HTTPRouteName)
	envoy.Ack(nextRoutes(t, envoy, runs("deny_delete_admin@v1")), translate.HTTPRouteName)
}
