package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/dynup/dynup/test/harness"
)

// healthStatus is the part of GET /status the tests read.
type healthStatus struct {
	Revision uint64 `json:"revision"`
	Checker  struct {
		Enabled   bool `json:"enabled"`
		Running   bool `json:"running"`
		Alive     bool `json:"alive"`
		Servers   int  `json:"servers"`
		Unhealthy int  `json:"unhealthy"`
	} `json:"checker"`
	Feedback struct {
		Enabled bool `json:"enabled"`
		Out     int  `json:"out"`
		LRS     *struct {
			Streams int `json:"streams"`
		} `json:"lrs"`
	} `json:"feedback"`
	Upstreams []struct {
		Name    string         `json:"name"`
		Servers []serverStatus `json:"servers"`
	} `json:"upstreams"`
}

type serverStatus struct {
	Host      string    `json:"host"`
	Port      int       `json:"port"`
	State     string    `json:"state"`
	DecidedBy string    `json:"decided_by"`
	Serving   bool      `json:"serving"`
	Reason    string    `json:"reason"`
	Since     time.Time `json:"since"`
	Note      string    `json:"note"`
	Heartbeat *struct {
		Healthy             bool      `json:"healthy"`
		ConsecutiveFailures int       `json:"consecutive_failures"`
		Checks              int       `json:"checks"`
		LastCheck           time.Time `json:"last_check"`
		LastError           string    `json:"last_error"`
	} `json:"heartbeat"`
	Feedback *struct {
		Out       bool      `json:"out"`
		OutUntil  time.Time `json:"out_until"`
		Failures  int       `json:"failures"`
		Reporters int       `json:"reporters"`
	} `json:"feedback"`
}

func getStatus(t *testing.T, d *harness.Dynup) healthStatus {
	t.Helper()
	var st healthStatus
	d.GetJSON(t, "/status", &st)
	return st
}

// serverIn returns the /status entry of backend b in upstream, or nil.
func (st healthStatus) serverIn(upstream string, b *harness.HealthBackend) *serverStatus {
	for _, u := range st.Upstreams {
		if u.Name != upstream {
			continue
		}
		for i := range u.Servers {
			if s := &u.Servers[i]; s.Host == b.Host && s.Port == b.Port {
				return s
			}
		}
	}
	return nil
}

// waitState waits until /status shows backend b of upstream in the wanted state, decided by decidedBy,
// and returns that entry.
func waitState(t *testing.T, d *harness.Dynup, upstream string, b *harness.HealthBackend, state, decidedBy string) *serverStatus {
	t.Helper()
	var got *serverStatus
	harness.Until(t, 20*time.Second, func() error {
		got = getStatus(t, d).serverIn(upstream, b)
		if got == nil {
			return fmt.Errorf("%s is not in /status", b.Name)
		}
		if got.State != state || got.DecidedBy != decidedBy {
			return fmt.Errorf("%s is %s (by %s), want %s (by %s)", b.Name, got.State, got.DecidedBy, state, decidedBy)
		}
		return nil
	})
	return got
}

type changeReport struct {
	Revision   uint64    `json:"revision"`
	Source     string    `json:"source"`
	Upstreams  []string  `json:"upstreams"`
	AcceptedAt time.Time `json:"accepted_at"`
	Nodes      struct {
		Acked   int `json:"acked"`
		Pending int `json:"pending"`
	} `json:"nodes"`
	LastAckMs *float64 `json:"last_ack_ms"`
}

// healthChangeRolledOut waits for the newest change a health source made (source "health/<name>") after
// revision since, until every connected node has ACKed it, and returns its report.
func healthChangeRolledOut(t *testing.T, d *harness.Dynup, source string, since uint64) changeReport {
	t.Helper()
	var found changeReport
	harness.Until(t, 20*time.Second, func() error {
		var list struct {
			Changes []changeReport `json:"changes"`
		}
		d.GetJSON(t, "/changes?limit=50", &list)
		for _, c := range list.Changes { // newest first
			if c.Source == "health/"+source && c.Revision > since {
				found = c
				if c.Nodes.Pending > 0 || c.LastAckMs == nil {
					return fmt.Errorf("change %d: %d nodes pending", c.Revision, c.Nodes.Pending)
				}
				return nil
			}
		}
		return fmt.Errorf("no change by health/%s after revision %d", source, since)
	})
	return found
}

// rolledOutAt is when the last node ACKed the change.
func (c changeReport) rolledOutAt() time.Time {
	return c.AcceptedAt.Add(time.Duration(*c.LastAckMs * float64(time.Millisecond)))
}

// noneFail sends n RPCs on each client: every one must succeed and none may reach the named backend.
//
// gRPC-Go's xDS client ACKs a response as soon as it has handed the update to its watchers, before the
// channel's balancer has built a picker from it (internal/xds/clients/xdsclient/ads_stream.go, recv), so a
// client that ACKed may still pick the old set for a moment. Each client is first given up to 5 s to
// stop reaching the backend (ten RPCs in a row, none failing); then n RPCs in a row must not reach it.
func noneFail(t *testing.T, n int, not string, ccs ...*grpc.ClientConn) {
	t.Helper()
	for _, cc := range ccs {
		harness.Until(t, 5*time.Second, func() error {
			if got := reached(t, cc, 10); got[not] != 0 {
				return fmt.Errorf("%d of 10 RPCs reached %s", got[not], not)
			}
			return nil
		})
	}
	for i, cc := range ccs {
		got := reached(t, cc, n) // fails the test on any failed RPC
		if got[not] != 0 {
			t.Fatalf("client %d: %d of %d RPCs reached %s after every node had it UNHEALTHY", i+1, got[not], n, not)
		}
	}
}

func healthBackends(t *testing.T) (a, b, c *harness.HealthBackend) {
	return harness.StartHealthBackend(t, "A"), harness.StartHealthBackend(t, "B"), harness.StartHealthBackend(t, "C")
}

func healthServers(bs ...*harness.HealthBackend) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf(`{"host":%q,"port":%d}`, b.Host, b.Port))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// backgroundRPCs keeps clients busy so that changes land under load; it counts failures.
type backgroundRPCs struct {
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed int
	sent   int
}

func startBackgroundRPCs(ccs ...*grpc.ClientConn) *backgroundRPCs {
	ctx, cancel := context.WithCancel(context.Background())
	l := &backgroundRPCs{stop: cancel}
	for _, cc := range ccs {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				_, err := harness.Who(context.Background(), cc)
				l.mu.Lock()
				l.sent++
				if err != nil {
					l.failed++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *backgroundRPCs) finish() (sent, failed int) {
	l.stop()
	l.wg.Wait()
	return l.sent, l.failed
}

// 1. Heartbeat: dynup probes 3 real gRPC backends (gRPC health) once for the fleet, with checkups' default
// sensibility (one failed probe). A stopped backend is UNHEALTHY for every client within 3 check
// intervals, after which no RPC fails; started again, it is used again. /status shows each transition.
func TestHeartbeatTakesAStoppedBackendOutForEveryClient(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	a, b, c := healthBackends(t)
	const interval = time.Second
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,
		"health_check":{"type":"grpc","checker":"dynup","interval":"1s","timeout":"500ms"}}`)
	clients := []*grpc.ClientConn{
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"}),
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-2"}),
	}
	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	s := waitState(t, d, "imgprocess", b, "healthy", "heartbeat")
	if s.Heartbeat == nil || s.Heartbeat.Checks == 0 || !s.Serving {
		t.Fatalf("B before the stop: %+v", s)
	}
	if st := getStatus(t, d); !st.Checker.Running || !st.Checker.Alive || st.Checker.Servers != 3 {
		t.Fatalf("checker liveness: %+v", st.Checker)
	}

	load := startBackgroundRPCs(clients...)
	before := getStatus(t, d).Revision
	stopped := time.Now()
	b.Stop()
	s = waitState(t, d, "imgprocess", b, "unhealthy", "heartbeat")
	if s.Serving || s.Reason == "" || s.Heartbeat.ConsecutiveFailures < 1 || s.Heartbeat.LastError == "" {
		t.Fatalf("B after the stop: %+v %+v", s, s.Heartbeat)
	}
	change := healthChangeRolledOut(t, d, "active", before)
	took := change.rolledOutAt().Sub(stopped)
	t.Logf("stopped B; every client had it UNHEALTHY after %s (change %d, %d nodes)", took.Round(time.Millisecond), change.Revision, change.Nodes.Acked)
	if change.Nodes.Acked != 2 || took > 3*interval {
		t.Fatalf("change %d reached %d clients after %s, want both within 3 check intervals (%s)", change.Revision, change.Nodes.Acked, took, 3*interval)
	}
	sent, failed := load.finish()
	t.Logf("%d RPCs in the background, %d failed before the clients had the update", sent, failed)
	noneFail(t, 100, "B", clients...)

	b.Start(t)
	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	if s := waitState(t, d, "imgprocess", b, "healthy", "heartbeat"); !s.Serving || s.Heartbeat.ConsecutiveFailures != 0 {
		t.Fatalf("B after the restart: %+v", s)
	}
}

// 1b. The same for an HTTP check whose endpoint starts answering 500 while the backend keeps serving
// gRPC: clients stop sending it RPCs, and use it again once the check passes.
func TestHTTPCheckFailingTakesBackendOut(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	a, b, c := healthBackends(t)
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,
		"health_check":{"type":"http","checker":"dynup","interval":"500ms","timeout":"400ms","http":{"path":"/healthz"}}}`)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B", "C")
	waitState(t, d, "imgprocess", b, "healthy", "heartbeat")

	before := getStatus(t, d).Revision
	b.SetHTTPStatus(http.StatusInternalServerError)
	if s := waitState(t, d, "imgprocess", b, "unhealthy", "heartbeat"); s.Reason != "http status 500" {
		t.Fatalf("reason %q, want http status 500", s.Reason)
	}
	healthChangeRolledOut(t, d, "active", before)
	noneFail(t, 100, "B", cc) // B still answers gRPC: only its EDS health keeps clients away

	b.SetHTTPStatus(http.StatusOK)
	waitReachesOnly(t, cc, "A", "B", "C")
	waitState(t, d, "imgprocess", b, "healthy", "heartbeat")
}

// 2. Feedback over HTTP: failures for one server from 3 different nodes take it out for every client;
// after fail_timeout it is back. Fewer than max_fails change nothing; the last server in service is never
// taken out.
func TestFeedbackTakesAServerOutEverywhereForFailTimeout(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	a, b, c := healthBackends(t)
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,"passive":{"max_fails":3,"fail_timeout":"3s"}}`)
	clients := []*grpc.ClientConn{
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"}),
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-2"}),
	}
	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	fb := func(node string) map[string]any {
		body := d.MustDo(t, http.MethodPost, "/feedback", fmt.Sprintf(`{"upstream":"imgprocess","host":%q,"port":%d,"failed":true,"node":%q}`, b.Host, b.Port, node))
		var r struct {
			Server map[string]any `json:"server"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r.Server
	}
	fb("node-1")
	if r := fb("node-2"); r["out"] != false || r["failures"] != 2.0 || r["reporters"] != 2.0 {
		t.Fatalf("after 2 failures: %v", r)
	}
	if s := getStatus(t, d).serverIn("imgprocess", b); s.State != "unchecked" || !s.Serving || s.Feedback == nil || s.Feedback.Failures != 2 {
		t.Fatalf("2 failures must not take B out: %+v", s)
	}
	before := getStatus(t, d).Revision
	r := fb("node-3")
	if r["out"] != true {
		t.Fatalf("the third failure from a third node must take B out: %v", r)
	}
	outUntil, err := time.Parse(time.RFC3339Nano, r["out_until"].(string))
	if err != nil {
		t.Fatal(err)
	}
	s := waitState(t, d, "imgprocess", b, "ejected", "feedback")
	if s.Serving || s.Feedback.Reporters != 3 || !strings.Contains(s.Reason, "3 failures") {
		t.Fatalf("B while out: %+v %+v", s, s.Feedback)
	}
	healthChangeRolledOut(t, d, "feedback", before)
	noneFail(t, 50, "B", clients...)

	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	if back := time.Now(); back.Before(outUntil) {
		t.Fatalf("B was back at %s, before its time out ended at %s", back, outUntil)
	}
	if s := waitState(t, d, "imgprocess", b, "unchecked", "admin"); s.Feedback == nil || s.Feedback.Out || s.Feedback.Failures != 0 {
		t.Fatalf("B back, with a clean count: %+v", s.Feedback)
	}

	// The only server of a protected upstream is never taken out.
	d.MustDo(t, http.MethodPost, "/upstream/solo", `{"servers":`+healthServers(c)+`,"passive":{"max_fails":1}}`)
	solo := harness.XDSClient(t, d.XDSAddr, "solo", harness.ClientNode{ID: "client-3"})
	waitReachesOnly(t, solo, "C")
	d.MustDo(t, http.MethodPost, "/feedback", fmt.Sprintf(`{"upstream":"solo","host":%q,"port":%d,"failed":true}`, c.Host, c.Port))
	s = waitState(t, d, "solo", c, "ejected", "feedback")
	if !s.Serving || s.Note == "" {
		t.Fatalf("the last server must stay in service: %+v", s)
	}
	noneFail(t, 50, "nobody", solo)
}

// 2b. Feedback over LRS: simulated Envoys report errors for one server, one each from 3 nodes → it is
// UNHEALTHY for every client within one report interval; after fail_timeout it is back.
func TestLRSReportsTakeAServerOutEverywhere(t *testing.T) {
	const reportInterval = time.Second
	d := harness.StartDynup(t, t.TempDir(), "--lrs-report-interval", reportInterval.String())
	a, b, c := healthBackends(t)
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,"passive":{"max_fails":3,"fail_timeout":"3s"}}`)
	clients := []*grpc.ClientConn{
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"}),
		harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-2"}),
	}
	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	var envoys []*harness.LRSClient
	for _, id := range []string{"envoy-1", "envoy-2", "envoy-3"} {
		e := harness.DialLRS(t, d.XDSAddr, id)
		if !e.First.SendAllClusters || !e.First.ReportEndpointGranularity || e.First.LoadReportingInterval.AsDuration() != reportInterval {
			t.Fatalf("dynup's first LRS answer to %s: %v", id, e.First)
		}
		envoys = append(envoys, e)
	}
	harness.Until(t, 20*time.Second, func() error {
		if st := getStatus(t, d); st.Feedback.LRS == nil || st.Feedback.LRS.Streams != 3 {
			return fmt.Errorf("LRS streams: %+v", st.Feedback.LRS)
		}
		return nil
	})
	before := getStatus(t, d).Revision
	load := func(errs uint64) []harness.EndpointLoad {
		return []harness.EndpointLoad{{Host: a.Host, Port: a.Port, Successes: 40}, {Host: b.Host, Port: b.Port, Errors: errs, Successes: 40 - errs},
			{Host: c.Host, Port: c.Port, Successes: 40}}
	}
	for _, e := range envoys[:2] {
		e.Report("imgprocess", reportInterval, load(1)...)
	}
	harness.Until(t, 20*time.Second, func() error {
		if s := getStatus(t, d).serverIn("imgprocess", b); s.Feedback == nil || s.Feedback.Failures != 2 {
			return fmt.Errorf("B's feedback after 2 reports: %+v", s.Feedback)
		}
		return nil
	})
	if s := getStatus(t, d).serverIn("imgprocess", b); !s.Serving {
		t.Fatalf("2 errors must not take B out: %+v", s)
	}
	reported := time.Now()
	envoys[2].Report("imgprocess", reportInterval, load(1)...)
	s := waitState(t, d, "imgprocess", b, "ejected", "feedback")
	change := healthChangeRolledOut(t, d, "feedback", before)
	took := change.rolledOutAt().Sub(reported)
	t.Logf("third node's report → every client had B UNHEALTHY after %s", took.Round(time.Millisecond))
	if change.Nodes.Acked != 2 || took > reportInterval {
		t.Fatalf("change %d reached %d clients after %s, want both within one report interval (%s)", change.Revision, change.Nodes.Acked, took, reportInterval)
	}
	noneFail(t, 50, "B", clients...)

	for _, cc := range clients {
		waitReachesOnly(t, cc, "A", "B", "C")
	}
	if back := time.Now(); back.Before(s.Feedback.OutUntil) {
		t.Fatalf("B back at %s, before its time out ended at %s", back, s.Feedback.OutUntil)
	}
}

// The checker keeps no state for a removed server and probes a new one at once (here the interval is an
// hour, so any probe of a new server is its first, immediate one).
func TestCheckerFollowsServerChanges(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	a, b, c := healthBackends(t)
	b.Stop()
	check := `"health_check":{"type":"tcp","checker":"dynup","interval":"1h"}`
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b)+`,`+check+`}`)
	waitState(t, d, "imgprocess", b, "unhealthy", "heartbeat")
	if st := getStatus(t, d); st.Checker.Servers != 2 || st.Checker.Unhealthy != 1 {
		t.Fatalf("checker with A and B: %+v", st.Checker)
	}

	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a)+`,`+check+`}`)
	harness.Until(t, 20*time.Second, func() error {
		st := getStatus(t, d)
		if st.Checker.Servers != 1 || st.Checker.Unhealthy != 0 || st.serverIn("imgprocess", b) != nil {
			return fmt.Errorf("after removing B: checker %+v", st.Checker)
		}
		return nil
	})

	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,`+check+`}`)
	sb := waitState(t, d, "imgprocess", b, "unhealthy", "heartbeat")
	var sc *serverStatus
	harness.Until(t, 20*time.Second, func() error {
		// A new server counts as healthy before its first probe (as in checkups); wait for that probe.
		if sc = getStatus(t, d).serverIn("imgprocess", c); sc == nil || sc.Heartbeat == nil || sc.Heartbeat.Checks == 0 {
			return fmt.Errorf("C not probed yet: %+v", sc)
		}
		return nil
	})
	if sc.State != "healthy" || sc.Heartbeat.Checks != 1 || sb.Heartbeat.Checks != 1 || sb.Heartbeat.ConsecutiveFailures != 1 {
		t.Fatalf("new servers start fresh with one immediate probe: C %+v, B %+v", sc.Heartbeat, sb.Heartbeat)
	}
}

// 3. Passive checks inside gRPC: a backend that fails half its RPCs is ejected by the gRPC client's own
// outlier detection (failure percentage), while dynup itself has not taken it out.
func TestGRPCOutlierDetectionEjectsAHalfFailingBackend(t *testing.T) {
	d := harness.StartDynup(t, t.TempDir())
	a, b, c := healthBackends(t)
	d.MustDo(t, http.MethodPost, "/upstream/imgprocess", `{"servers":`+healthServers(a, b, c)+`,"passive":{"max_fails":3,"fail_timeout":"1m"}}`)
	cc := harness.XDSClient(t, d.XDSAddr, "imgprocess", harness.ClientNode{ID: "client-1"})
	waitReachesOnly(t, cc, "A", "B", "C")

	b.FailHalf(true)
	failures := 0
	harness.Until(t, 30*time.Second, func() error {
		got := map[string]int{}
		for i := 0; i < 60; i++ {
			who, err := harness.Who(context.Background(), cc)
			if err != nil {
				failures++
				got["failed"]++
				continue
			}
			got[who]++
		}
		if got["B"] > 0 || got["failed"] > 0 || got["A"] == 0 || got["C"] == 0 {
			return fmt.Errorf("60 RPCs: %v", got)
		}
		return nil
	})
	t.Logf("B ejected by the client after %d failed RPCs", failures)
	s := getStatus(t, d).serverIn("imgprocess", b)
	if s == nil || !s.Serving || s.State == "ejected" || s.State == "unhealthy" {
		t.Fatalf("dynup must not have taken B out itself (the client did): %+v", s)
	}
}
