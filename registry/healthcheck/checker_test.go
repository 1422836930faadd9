package healthcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dynup/dynup/registry"
)

type fixture struct {
	t      *testing.T
	store  *registry.Store
	states <-chan *registry.State
	c      *Checker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fb, err := registry.NewFileBackend(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store, err := registry.NewStore(context.Background(), fb)
	if err != nil {
		t.Fatal(err)
	}
	states, unsubscribe := store.Subscribe()
	t.Cleanup(unsubscribe)
	ctx, cancel := context.WithCancel(context.Background())
	c := New(store, nil, 0)
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{t: t, store: store, states: states, c: c}
}

func (f *fixture) put(u registry.Upstream) {
	f.t.Helper()
	if _, err := f.store.PutUpstream(context.Background(), u, "admin"); err != nil {
		f.t.Fatal(err)
	}
}

// waitServer waits for a published state in which the server's health satisfies cond.
func (f *fixture) waitServer(upstream, addr string, cond func(*registry.ServerHealth) bool) *registry.ServerHealth {
	f.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case st := <-f.states:
			if u, ok := st.Upstream(upstream); ok {
				for _, s := range u.Servers {
					if net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) == addr && cond(s.Health) {
						return s.Health
					}
				}
			}
		case <-timeout:
			f.t.Fatalf("server %s/%s did not reach the expected health within 20s", upstream, addr)
		}
	}
}

func isOut(h *registry.ServerHealth) bool { return h != nil && h.Source == Source }
func isIn(h *registry.ServerHealth) bool  { return h == nil }

func server(addr string) registry.Server {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return registry.Server{Host: host, Port: p}
}

func check(typ string, f func(*registry.HealthCheck)) *registry.HealthCheck {
	h := &registry.HealthCheck{Type: typ, Checker: CheckerDynup, Interval: &registry.Duration{Duration: MinInterval}, Timeout: registry.Seconds(2)}
	if f != nil {
		f(h)
	}
	return h
}

// MinInterval keeps the tests quick: the shortest interval validation allows.
const MinInterval = registry.MinCheckInterval

// tcpServer accepts connections until stopped; it can start again on the same port.
type tcpServer struct {
	t    *testing.T
	addr string
	lis  net.Listener
}

func startTCP(t *testing.T, addr string) *tcpServer {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s := &tcpServer{t: t, addr: lis.Addr().String(), lis: lis}
	t.Cleanup(func() { s.lis.Close() })
	return s
}

func TestTCPCheckTakesOutAndBringsBack(t *testing.T) {
	f := newFixture(t)
	a, b := startTCP(t, "127.0.0.1:0"), startTCP(t, "127.0.0.1:0")
	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr), server(b.addr)},
		HealthCheck: check("tcp", func(h *registry.HealthCheck) { h.UnhealthyThreshold = 2 })})
	f.c.Wait(context.Background(), func() bool { _, s := f.c.Status(); return s[key("web", b.addr)].Checks > 0 })

	b.lis.Close()
	h := f.waitServer("web", b.addr, isOut)
	if !strings.Contains(h.Reason, "refused") {
		t.Errorf("reason %q does not say the connection was refused", h.Reason)
	}
	live, st := f.c.Status()
	if s := st[key("web", b.addr)]; s.Healthy || s.ConsecutiveFailures < 2 || s.LastError == "" {
		t.Errorf("status of the stopped server: %+v", s)
	}
	if !live.Running || live.Servers != 2 || live.Unhealthy != 1 {
		t.Errorf("liveness: %+v", live)
	}

	startTCP(t, b.addr)
	f.waitServer("web", b.addr, isIn)
	if _, st := f.c.Status(); !st[key("web", b.addr)].Healthy {
		t.Errorf("status after restart: %+v", st[key("web", b.addr)])
	}
}

func TestUnhealthyThresholdCountsConsecutiveFailures(t *testing.T) {
	f := newFixture(t)
	a := startTCP(t, "127.0.0.1:0")
	a.lis.Close() // refused from the start
	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr), server("127.0.0.1:1")},
		HealthCheck: check("tcp", func(h *registry.HealthCheck) { h.UnhealthyThreshold = 3 })})
	k := key("web", a.addr)
	var seen []bool
	f.c.Wait(context.Background(), func() bool {
		_, st := f.c.Status()
		s := st[k]
		if s.Checks > 0 && len(seen) < int(s.Checks) {
			seen = append(seen, s.Healthy)
		}
		return s.Checks >= 3
	})
	// Probes 1 and 2 failed but the server stays healthy; the third takes it out.
	if len(seen) < 3 || !seen[0] || !seen[1] || seen[len(seen)-1] {
		t.Fatalf("health after each probe: %v, want healthy, healthy, unhealthy", seen)
	}
}

func TestHTTPCheckStatuses(t *testing.T) {
	f := newFixture(t)
	var code atomic.Int32
	code.Store(200)
	var gotHost, gotPath, gotMethod, gotHeader atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotPath.Store(r.URL.Path)
		gotMethod.Store(r.Method)
		gotHeader.Store(r.Header.Get("X-Probe"))
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	f.put(registry.Upstream{Name: "api", Servers: []registry.Server{server(addr), server("127.0.0.1:1")}, Protected: &unprotected,
		HealthCheck: check("http", func(h *registry.HealthCheck) {
			h.HTTP = &registry.HTTPCheck{Path: "/status", Host: "api.local", Method: "HEAD", BadStatuses: []int{500, 502}}
			h.Headers = []registry.HeaderPair{{Name: "X-Probe", Value: "dynup"}}
		})})
	k := key("api", addr)
	f.c.Wait(context.Background(), func() bool { _, s := f.c.Status(); return s[k].Checks > 0 })
	if gotHost.Load() != "api.local" || gotPath.Load() != "/status" || gotMethod.Load() != "HEAD" || gotHeader.Load() != "dynup" {
		t.Fatalf("probe request: host %v path %v method %v header %v", gotHost.Load(), gotPath.Load(), gotMethod.Load(), gotHeader.Load())
	}
	code.Store(404) // not listed as bad: checkups counts it healthy
	f.c.Wait(context.Background(), func() bool { _, s := f.c.Status(); return s[k].Checks > 2 })
	if _, s := f.c.Status(); !s[k].Healthy {
		t.Fatalf("404 is not a bad status here: %+v", s[k])
	}
	code.Store(502)
	if h := f.waitServer("api", addr, isOut); h.Reason != "http status 502" {
		t.Errorf("reason %q", h.Reason)
	}
	code.Store(200)
	f.waitServer("api", addr, isIn)
}

func TestGRPCCheck(t *testing.T) {
	f := newFixture(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	hs.SetServingStatus("imgprocess.v1.Resize", healthpb.HealthCheckResponse_SERVING)
	addr := lis.Addr().String()
	f.put(registry.Upstream{Name: "img", Servers: []registry.Server{server(addr), server("127.0.0.1:1")}, Protected: &unprotected,
		HealthCheck: check("grpc", func(h *registry.HealthCheck) { h.GRPCService = "imgprocess.v1.Resize" })})
	k := key("img", addr)
	f.c.Wait(context.Background(), func() bool { _, s := f.c.Status(); return s[k].Checks > 0 })
	if _, s := f.c.Status(); !s[k].Healthy || s[k].LastError != "" {
		t.Fatalf("serving server: %+v", s[k])
	}
	hs.SetServingStatus("imgprocess.v1.Resize", healthpb.HealthCheckResponse_NOT_SERVING)
	if h := f.waitServer("img", addr, isOut); !strings.Contains(h.Reason, "NOT_SERVING") {
		t.Errorf("reason %q", h.Reason)
	}
	hs.SetServingStatus("imgprocess.v1.Resize", healthpb.HealthCheckResponse_SERVING)
	f.waitServer("img", addr, isIn)
}

func TestRedisCheck(t *testing.T) {
	f := newFixture(t)
	var maintenance atomic.Bool
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go serveRedis(c, &maintenance)
		}
	}()
	addr := lis.Addr().String()
	f.put(registry.Upstream{Name: "cache", Servers: []registry.Server{server(addr), server("127.0.0.1:1")}, Protected: &unprotected,
		HealthCheck: check("redis", func(h *registry.HealthCheck) { h.RedisKey = "maintenance" })})
	k := key("cache", addr)
	f.c.Wait(context.Background(), func() bool { _, s := f.c.Status(); return s[k].Checks > 0 })
	if _, s := f.c.Status(); !s[k].Healthy {
		t.Fatalf("redis answering PONG without the key: %+v", s[k])
	}
	maintenance.Store(true)
	if h := f.waitServer("cache", addr, isOut); !strings.Contains(h.Reason, "maintenance") {
		t.Errorf("reason %q", h.Reason)
	}
}

// serveRedis answers PING and EXISTS in RESP, enough for the probe.
func serveRedis(c net.Conn, maintenance *atomic.Bool) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		var args []string
		for i := 0; i < n; i++ {
			r.ReadString('\n') // $len
			a, _ := r.ReadString('\n')
			args = append(args, strings.TrimSpace(a))
		}
		switch {
		case len(args) == 1 && args[0] == "PING":
			fmt.Fprint(c, "+PONG\r\n")
		case len(args) == 2 && args[0] == "EXISTS" && maintenance.Load():
			fmt.Fprint(c, ":1\r\n")
		default:
			fmt.Fprint(c, ":0\r\n")
		}
	}
}

// A removed server loses its state (its verdict too); a new one is probed at once, not after an interval.
func TestFollowsServerChanges(t *testing.T) {
	f := newFixture(t)
	a, b := startTCP(t, "127.0.0.1:0"), startTCP(t, "127.0.0.1:0")
	b.lis.Close()
	hour := func(h *registry.HealthCheck) { h.Interval = registry.Seconds(3600) }
	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr), server(b.addr)}, HealthCheck: check("tcp", hour)})
	f.waitServer("web", b.addr, isOut)

	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr)}, HealthCheck: check("tcp", hour)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !f.c.Wait(ctx, func() bool {
		live, st := f.c.Status()
		_, ok := st[key("web", b.addr)]
		return !ok && live.Servers == 1 && live.Unhealthy == 0
	}) {
		live, st := f.c.Status()
		t.Fatalf("after removing %s: liveness %+v, servers %v", b.addr, live, st)
	}
	c := startTCP(t, "127.0.0.1:0")
	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr), server(c.addr)}, HealthCheck: check("tcp", hour)})
	// With an hour between probes, a check of c means the first probe ran at once.
	if !f.c.Wait(ctx, func() bool { _, s := f.c.Status(); return s[key("web", c.addr)].Checks == 1 }) {
		t.Fatal("a new server was not probed at once")
	}

	// Turning dynup's checker off for the upstream drops every server.
	f.put(registry.Upstream{Name: "web", Servers: []registry.Server{server(a.addr), server(c.addr)},
		HealthCheck: check("tcp", func(h *registry.HealthCheck) { h.Checker = CheckerEnvoy })})
	if !f.c.Wait(ctx, func() bool { live, _ := f.c.Status(); return live.Servers == 0 }) {
		t.Fatal("checker envoy: dynup still probes the servers")
	}
}

// unprotected lets every server be out: the tests' second server (port 1) is always down, and a
// protected upstream would keep the server under test in service.
var unprotected = false

func key(upstream, addr string) registry.ServerKey {
	s := server(addr)
	return registry.ServerKey{Upstream: upstream, Host: s.Host, Port: s.Port}
}
