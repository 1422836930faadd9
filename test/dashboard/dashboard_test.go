// Package dashboard tests dynup's web page in a real browser: headless Chromium (Debian's chromium and
// chromium-driver, installed by test/install-chromium.sh) against a running dynup with upstreams, a real
// gRPC-Go xDS client and a simulated Envoy.
package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"

	"github.com/dynup/dynup/test/harness"
)

func TestDashboardShowsFleetAndUpdatesItself(t *testing.T) {
	br := startBrowser(t) // first: skips (locally) before anything starts when Chromium is missing
	d := harness.StartDynup(t, t.TempDir())
	a, b := harness.StartBackend(t, "A"), harness.StartBackend(t, "B")

	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", servers(a.Addr()))
	// A second upstream, with one server marked down, so the page shows health that is not all green.
	d.MustDo(t, http.MethodPost, "/upstream/search", `{"servers":[{"host":"127.0.0.1","port":9001,"weight":3},{"host":"127.0.0.1","port":9002,"down":true}]}`)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "grpc-client-1", Zone: "a"})
	harness.Until(t, 30*time.Second, func() error { return reaches(t, cc, "A") })

	// A short poll interval keeps the test quick; the default (2s) works the same way.
	br.Open("http://" + d.AdminAddr + "/?refresh=0.5")
	br.Eval(`window.notReloaded = true; return null;`, nil)

	// Upstreams with their servers and health.
	br.WaitFor("both upstreams", `document.querySelector('[data-upstream="imgprocess"]') && document.querySelector('[data-upstream="search"]')`)
	if got := br.Text(`[data-upstream="imgprocess"]`); !strings.Contains(got, a.Addr()) || !strings.Contains(got, "healthy") {
		t.Errorf("imgprocess row shows %q, want server %s, healthy", got, a.Addr())
	}
	if got := br.Text(`[data-upstream="search"] [data-server="127.0.0.1:9002"]`); !strings.Contains(got, "down") {
		t.Errorf("search's down server shows %q, want it marked down", got)
	}
	if got := br.Text(`[data-upstream="search"] [data-server="127.0.0.1:9001"]`); !strings.Contains(got, "healthy") || !strings.Contains(got, "w3") {
		t.Errorf("search's first server shows %q, want healthy with weight 3", got)
	}
	if got := br.Text(`[data-upstream="search"] .badge`); got != "1/2" {
		t.Errorf("search's healthy count shows %q, want 1/2", got)
	}

	// The connected gRPC client, in sync (every version it was sent is ACKed).
	br.WaitFor("grpc-client-1 in sync", `document.querySelector('[data-node="grpc-client-1"] [data-state="in-sync"]')?.innerText === 'in sync'`)
	if got := br.Text(`[data-node="grpc-client-1"]`); !strings.Contains(got, "grpc/a") || !strings.Contains(got, "CDS") || !strings.Contains(got, "gRPC Go") {
		t.Errorf("node row shows %q, want its group grpc/a, its types and its user agent", got)
	}

	// A change after the client connected, so its propagation is a real one: the page shows it rolled out.
	first := change(t, d.MustDo(t, http.MethodPost, "/upstream/imgprocess", servers(a.Addr(), b.Addr())))
	br.WaitFor("change "+first+" rolled out", changeRolledOut(first))
	if got := br.Text(`[data-change="` + first + `"]`); !strings.Contains(got, "imgprocess") || !strings.Contains(got, "1 ACKed") {
		t.Errorf("change %s shows %q, want upstream imgprocess ACKed by the client", first, got)
	}
	br.WaitFor("server B under imgprocess", `document.querySelector('[data-upstream="imgprocess"] [data-server="`+b.Addr()+`"]')`)

	// The page follows further changes on its own, without a reload. (Only changes to what the client
	// watches are checked for rollout: gRPC clients are not sent versions of resources they do not watch.)
	second := change(t, d.MustDo(t, http.MethodPost, "/upstream/imgprocess", servers(b.Addr())))
	br.WaitFor("change "+second+" rolled out", changeRolledOut(second))
	d.MustDo(t, http.MethodDelete, "/upstream/search", "")
	br.WaitFor("search gone and imgprocess on B only", `!document.querySelector('[data-upstream="search"]') &&
		document.querySelector('[data-upstream="imgprocess"] [data-server="`+b.Addr()+`"]') &&
		!document.querySelector('[data-upstream="imgprocess"] [data-server="`+a.Addr()+`"]')`)
	harness.Until(t, 30*time.Second, func() error { return reaches(t, cc, "B") })
	var notReloaded bool
	if br.Eval(`return window.notReloaded === true;`, &notReloaded); !notReloaded {
		t.Error("the page was reloaded; it should update itself")
	}

	// A simulated Envoy rejects a cluster version: the page names the node, the detail and the upstream.
	envoy := harness.DialADS(t, d.XDSAddr, "envoy-1", "")
	envoy.Subscribe(resource.ClusterType)
	envoy.Ack(envoy.Next())
	bad := change(t, d.MustDo(t, http.MethodPost, "/upstream/bad", servers("10.0.0.2:80")))
	envoy.Nack(envoy.Next(), "cluster bad: rejected by the test")
	br.WaitFor("envoy-1 NACKed", `document.querySelector('[data-node="envoy-1"] .badge')?.innerText === 'NACKed'`)
	if got := br.Text(`[data-node="envoy-1"]`); !strings.Contains(got, "cluster bad: rejected by the test") || !strings.Contains(got, "#"+bad+" (bad)") {
		t.Errorf("envoy-1 row shows %q, want the NACK detail and change #%s (bad)", got, bad)
	}
	br.WaitFor("upstream bad rejected", `document.querySelector('[data-upstream="bad"] [data-rejected]')?.innerText.includes('envoy-1')`)
	br.WaitFor("change "+bad+" NACKed", `document.querySelector('[data-change="`+bad+`"] .badge')?.innerText === 'NACKed'`)
	if got := br.Text(`[data-change="` + bad + `"]`); !strings.Contains(got, "envoy-1: cluster bad: rejected by the test") {
		t.Errorf("change %s shows %q, want envoy-1 and its NACK detail", bad, got)
	}
	if got := br.Text(`#summary`); !strings.Contains(got, "1 NACKed") {
		t.Errorf("summary shows %q, want 1 NACKed node", got)
	}

	// Self-contained: every resource came from dynup itself, and nothing broke (CSP violations land here).
	var foreign []string
	br.Eval(`return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin + '/'));`, &foreign)
	if len(foreign) > 0 {
		t.Errorf("the page loaded resources from elsewhere: %v", foreign)
	}
	if errs := br.ConsoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
	if got := br.Text(`#status`); !strings.HasPrefix(got, "Live") {
		t.Errorf("status shows %q, want Live", got)
	}
	if p := os.Getenv("DYNUP_DASHBOARD_SCREENSHOT"); p != "" {
		br.call(http.MethodPost, "/window/rect", map[string]int{"width": 1400, "height": 1600})
		br.Screenshot(p)
	}

	// dynup gone: the page says so and keeps showing the last data.
	d.Stop(t)
	br.WaitFor("the status saying dynup is unreachable", `document.getElementById('status').dataset.state === 'error'`)
	if got := br.Text(`#status`); !strings.Contains(got, "Cannot reach dynup") {
		t.Errorf("status shows %q, want it to say dynup cannot be reached", got)
	}
	if got := br.Text(`[data-node="grpc-client-1"]`); !strings.Contains(got, "in sync") {
		t.Errorf("after dynup stopped the node row shows %q, want the last data kept", got)
	}
}

// changeRolledOut is true once the change's row says it reached every node.
func changeRolledOut(id string) string {
	return `document.querySelector('[data-change="` + id + `"] .badge')?.innerText === 'rolled out'`
}

func servers(addrs ...string) string {
	var s []string
	for _, a := range addrs {
		host, port, _ := strings.Cut(a, ":")
		s = append(s, fmt.Sprintf(`{"host":%q,"port":%s}`, host, port))
	}
	return `{"servers":[` + strings.Join(s, ",") + `]}`
}

// change returns the change id a write answered with.
func change(t *testing.T, body []byte) string {
	t.Helper()
	var r struct{ Change uint64 }
	if err := json.Unmarshal(body, &r); err != nil || r.Change == 0 {
		t.Fatalf("write answered %s, want a change id", body)
	}
	return strconv.FormatUint(r.Change, 10)
}

// reaches is nil once the client's RPCs are answered by backend want.
func reaches(t *testing.T, cc *grpc.ClientConn, want string) error {
	got, err := harness.Who(t.Context(), cc)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("answered by %s, want %s", got, want)
	}
	return nil
}
