// Package e2e runs dynup as a process and checks its behaviour through real xDS clients (gRPC-Go) and real
// gRPC backends.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynup/dynup/test/harness"
)

func serversJSON(bs ...*harness.Backend) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf(`{"host":%q,"port":%d}`, b.Host, b.Port))
	}
	return `{"servers":[` + strings.Join(parts, ",") + `]}`
}

// reached sends n RPCs and returns the set of backends that answered; any failed RPC fails the test.
func reached(t *testing.T, cc *grpc.ClientConn, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		who, err := harness.Who(context.Background(), cc)
		if err != nil {
			t.Fatalf("RPC %d: %v", i, err)
		}
		got[who]++
	}
	return got
}

// waitReachesOnly waits until a window of RPCs reaches exactly the named backends.
func waitReachesOnly(t *testing.T, cc *grpc.ClientConn, names ...string) {
	t.Helper()
	want := strings.Join(sorted(names), ",")
	harness.Until(t, 20*time.Second, func() error {
		got := map[string]bool{}
		for i := 0; i < 30; i++ {
			who, err := harness.Who(context.Background(), cc)
			if err != nil {
				return err
			}
			got[who] = true
		}
		var g []string
		for k := range got {
			g = append(g, k)
		}
		if s := strings.Join(sorted(g), ","); s != want {
			return fmt.Errorf("reached %s, want %s", s, want)
		}
		return nil
	})
}

func sorted(s []string) []string { sort.Strings(s); return s }

type fixture struct {
	dynup   *harness.Dynup
	a, b, c *harness.Backend
}

func setup(t *testing.T) *fixture {
	t.Helper()
	return &fixture{
		dynup: harness.StartDynup(t, t.TempDir()),
		a:     harness.StartBackend(t, "A"),
		b:     harness.StartBackend(t, "B"),
		c:     harness.StartBackend(t, "C"),
	}
}

// 1. POST imgprocess with backends A and B → RPCs reach only A and B.
func TestPostedUpstreamCarriesTraffic(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a, f.b))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")
	got := reached(t, cc, 100)
	if got["C"] != 0 || got["A"] == 0 || got["B"] == 0 {
		t.Fatalf("100 RPCs reached %v, want only A and B, both", got)
	}
}

// 2. While a client sends RPCs in a loop, swap the servers between {A,B} and {B,C} 20 times → zero failed
// RPCs, and traffic ends on the last set.
func TestSwappingServersFailsNoRPC(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a, f.b))
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")

	ctx, cancel := context.WithCancel(context.Background())
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := harness.Who(context.Background(), cc); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				sent.Add(1)
			}
		}()
	}
	sets := [][]*harness.Backend{{f.b, f.c}, {f.a, f.b}}
	for i := 0; i < 20; i++ {
		before := sent.Load()
		f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(sets[i%2]...))
		// Let traffic flow on each set before the next swap, so every swap happens under load.
		harness.Until(t, 10*time.Second, func() error {
			if sent.Load() < before+20 {
				return fmt.Errorf("only %d RPCs since swap %d", sent.Load()-before, i)
			}
			return nil
		})
	}
	waitReachesOnly(t, cc, "A", "B") // the 20th swap set {A,B}
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d RPCs failed during 20 swaps; first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	t.Logf("%d RPCs, 0 failed, over 20 swaps", sent.Load())
}

// 3. DELETE → new RPCs fail with Unavailable; another upstream keeps working.
func TestDeletedUpstreamStopsAndOthersKeepWorking(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a))
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imageinfo", serversJSON(f.c))
	img := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	info := harness.XDSClient(t, f.dynup.XDSAddr, "imageinfo", harness.ClientNode{ID: "client-2"})
	waitReachesOnly(t, img, "A")
	waitReachesOnly(t, info, "C")

	f.dynup.MustDo(t, http.MethodDelete, "/upstream/imgprocess", "")
	harness.Until(t, 20*time.Second, func() error {
		_, err := harness.Who(context.Background(), img)
		if status.Code(err) != codes.Unavailable {
			return fmt.Errorf("RPC to a deleted upstream: %v, want Unavailable", err)
		}
		return nil
	})
	if got := reached(t, info, 50); got["C"] != 50 {
		t.Fatalf("imageinfo after deleting imgprocess: %v", got)
	}
}

// 4. The dyups text body does the same as JSON.
func TestDyupsTextBody(t *testing.T) {
	f := setup(t)
	code, body := f.dynup.Do(t, http.MethodPost, "/upstream/dyhost", fmt.Sprintf("server %s;server %s;", f.a.Addr(), f.b.Addr()))
	if code != http.StatusOK || string(body) != "success" {
		t.Fatalf("dyups POST: %d %q, want 200 \"success\"", code, body)
	}
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "dyhost", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")
	f.dynup.MustDo(t, http.MethodPost, "/upstream/dyhost", fmt.Sprintf("server %s weight=2;\nserver %s backup;", f.c.Addr(), f.a.Addr()))
	waitReachesOnly(t, cc, "C") // A is a backup now: it takes traffic only when C cannot
}

type detail struct {
	Revision  uint64            `json:"revision"`
	Version   string            `json:"version"`
	Upstreams []json.RawMessage `json:"upstreams"`
}

type xdsStatus struct {
	Groups []struct {
		Group    struct{ Kind string } `json:"group"`
		Versions map[string]string     `json:"versions"`
	} `json:"groups"`
}

type nodesView struct {
	Nodes []struct {
		ID    string                      `json:"id"`
		Group struct{ Kind, Zone string } `json:"group"`
		Types map[string]struct {
			AckedVersion string `json:"acked_version"`
		} `json:"types"`
	} `json:"nodes"`
}

// ackedVersions waits until node id (a gRPC client) is on its group's current version of every type a gRPC
// client reads (listeners with inline routes, clusters, endpoints) and returns them.
func ackedVersions(t *testing.T, d *harness.Dynup, id string) map[string]string {
	t.Helper()
	var out map[string]string
	harness.Until(t, 20*time.Second, func() error {
		var groups struct {
			Groups []struct {
				Group    struct{ Kind, Zone string } `json:"group"`
				Versions map[string]string           `json:"versions"`
			} `json:"groups"`
		}
		d.GetJSON(t, "/xds", &groups)
		var v nodesView
		d.GetJSON(t, "/nodes", &v)
		for _, n := range v.Nodes {
			if n.ID != id {
				continue
			}
			current := map[string]string{}
			for _, g := range groups.Groups {
				if g.Group == n.Group {
					current = g.Versions
				}
			}
			out = map[string]string{}
			for typ, s := range n.Types {
				if s.AckedVersion != "" {
					out[typ] = s.AckedVersion
				}
			}
			if len(out) != 3 {
				return fmt.Errorf("node %s ACKed %v", id, out)
			}
			for typ, v := range out {
				if current[typ] != v {
					return fmt.Errorf("node %s is on %s %s, its group on %s", id, typ, v, current[typ])
				}
			}
			return nil
		}
		return fmt.Errorf("node %s not connected", id)
	})
	return out
}

// 5. Restart dynup on the same data dir → same upstreams, same version; a connected client reconnects, gets
// the same xDS versions back, and never fails an RPC.
func TestRestartKeepsStateAndVersions(t *testing.T) {
	f := setup(t)
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imgprocess", serversJSON(f.a, f.b))
	f.dynup.MustDo(t, http.MethodPost, "/upstream/imageinfo", `{"servers":[{"host":"10.0.0.9","port":80,"weight":3,"zone":"b"}],"keepalive":20}`)
	cc := harness.XDSClient(t, f.dynup.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B")
	ackedBefore := ackedVersions(t, f.dynup, "client-1")
	var before detail
	f.dynup.GetJSON(t, "/detail", &before)

	f.dynup.Restart(t)
	if got := reached(t, cc, 20); got["C"] != 0 { // the client keeps its config while dynup is away
		t.Fatalf("during restart: %v", got)
	}
	var after detail
	f.dynup.GetJSON(t, "/detail", &after)
	if after.Version != before.Version || after.Revision != before.Revision || len(after.Upstreams) != 2 {
		t.Fatalf("after restart: revision %d version %s (%d upstreams), before: revision %d version %s",
			after.Revision, after.Version, len(after.Upstreams), before.Revision, before.Version)
	}
	for i := range before.Upstreams {
		if string(before.Upstreams[i]) != string(after.Upstreams[i]) {
			t.Errorf("upstream %d changed across restart:\n%s\n%s", i, before.Upstreams[i], after.Upstreams[i])
		}
	}
	ackedAfter := ackedVersions(t, f.dynup, "client-1")
	for typ, v := range ackedBefore {
		if ackedAfter[typ] != v {
			t.Errorf("%s: version %s before restart, %s after", typ, v, ackedAfter[typ])
		}
	}
	reached(t, cc, 20)
}
