// Package consulagent runs a real Consul agent for dynup's tests.
//
// The agent is a child process of the test binary, bound only to 127.0.0.1 on free ports, with its data
// in t.TempDir() and its output in a log file whose tail is printed when the test fails. It is stopped by
// t.Cleanup. The Consul binary is never built by a test: Binary finds one that
// test/consulagent/build-consul.sh built before (or DYNUP_CONSUL_BIN, or `consul` on PATH) and otherwise
// skips the test, or fails it when CI=true.
//
//	a := consulagent.Start(t)                           // -dev: in memory, fastest
//	p := consulagent.Start(t, consulagent.Persistent()) // single-node server: state survives Restart
//	c := a.Client(t)                                    // *api.Client for a.Addr()
//	a.RegisterService(t, api.AgentServiceRegistration{...})
//	a.SetTTL(t, "service:web", api.HealthPassing)
//	p.Restart(t)                                        // same ports, same data dir
package consulagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

const (
	// DefaultVersion is the Consul version build-consul.sh builds when CONSUL_VERSION is unset.
	DefaultVersion = "v1.22.0"

	// ReadyTimeout bounds how long Start waits for the agent to be usable.
	ReadyTimeout = 60 * time.Second
	// StopTimeout bounds how long Stop waits after SIGINT before it kills the agent.
	StopTimeout = 15 * time.Second

	buildHint = "bash test/consulagent/build-consul.sh"
	nodeName  = "dynup-consul-test"
	logTail   = 80 // lines of the agent's log printed on failure
)

// CachedBinaryPath is where build-consul.sh puts (and prints) the binary, computed exactly as the
// script does: $DYNUP_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/dynup, then
// consul-$CONSUL_VERSION/consul, CONSUL_VERSION defaulting to DefaultVersion.
func CachedBinaryPath() string {
	version := os.Getenv("CONSUL_VERSION")
	if version == "" {
		version = DefaultVersion
	}
	cache := os.Getenv("DYNUP_CACHE_DIR")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home := os.Getenv("HOME")
			if home == "" {
				home, _ = os.UserHomeDir()
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "dynup")
	}
	return filepath.Join(cache, "consul-"+version, "consul")
}

// Binary returns the path of a Consul binary: $DYNUP_CONSUL_BIN, else CachedBinaryPath(), else
// `consul` on PATH. When there is none it skips the test, or fails it when CI=true, saying how to build
// one. It never builds one itself.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DYNUP_CONSUL_BIN"); p != "" {
		if !isExecutable(p) {
			// Set explicitly but wrong: that is a mistake to report, not a reason to skip.
			t.Fatalf("DYNUP_CONSUL_BIN=%s is not an executable file; build one with `%s`", p, buildHint)
		}
		return p
	}
	if p := CachedBinaryPath(); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	msg := fmt.Sprintf("no consul binary: build one with `%s` (~8 min cold; it is cached at %s), "+
		"or set DYNUP_CONSUL_BIN, or put `consul` on PATH", buildHint, CachedBinaryPath())
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Option configures Start.
type Option func(*options)

type options struct {
	persistent bool
	extra      map[string]any
}

// Persistent runs a single-node server (-server -bootstrap-expect=1 -data-dir …) instead of -dev, so
// that KV, catalog registrations and agent-registered services survive Stop/Start and Restart.
// Startup is slower than -dev (a Raft election on disk).
func Persistent() Option { return func(o *options) { o.persistent = true } }

// Config merges extra top-level keys into the agent's JSON configuration (e.g. "log_level": "TRACE").
// Keys this package sets for isolation (addresses, ports, node name) can be overridden, at the
// caller's risk.
func Config(extra map[string]any) Option {
	return func(o *options) {
		if o.extra == nil {
			o.extra = map[string]any{}
		}
		for k, v := range extra {
			o.extra[k] = v
		}
	}
}

type ports struct {
	HTTP, SerfLAN, SerfWAN, Server int
}

// Agent is a Consul agent process owned by one test.
type Agent struct {
	bin        string
	persistent bool
	extra      map[string]any
	root       string // t.TempDir(): config.json, consul.log, data/
	ports      ports
	transport  *http.Transport // shared by every Client, so Stop can drop stale keep-alive connections

	mu       sync.Mutex
	proc     *process // nil when stopped
	stopping bool
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and err is set
	err  error
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start starts an agent and waits until it is usable: the HTTP API answers, a leader is elected, the
// agent's own node is in the catalog and a Raft write (a session created and destroyed) succeeds.
// The agent is stopped by t.Cleanup; if the test failed, the tail of the agent's log is printed.
func Start(t testing.TB, opts ...Option) *Agent {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	a := &Agent{
		bin:        Binary(t),
		persistent: o.persistent,
		extra:      o.extra,
		root:       t.TempDir(),
		transport: &http.Transport{
			Proxy:               nil, // never send loopback traffic through HTTP(S)_PROXY
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	if err := os.MkdirAll(a.dataDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cleanup(t) })

	// Free ports are found by binding and releasing them, so another process can take one before
	// Consul binds it. If that happens, try again with fresh ports; later (re)starts reuse these.
	const attempts = 3
	for i := 1; ; i++ {
		p, err := freePorts()
		if err != nil {
			t.Fatalf("consulagent: finding free ports: %v", err)
		}
		a.ports = p
		err = a.start(t)
		if err == nil {
			return a
		}
		if i < attempts && errors.Is(err, errPortInUse) {
			t.Logf("consulagent: attempt %d: %v; retrying on other ports", i, err)
			continue
		}
		t.Fatalf("consulagent: %v", err) // the cleanup prints the log's tail
	}
}

var errPortInUse = errors.New("a port was taken before consul bound it")

// Addr is the agent's HTTP address, "127.0.0.1:port". It does not change across Stop/Start.
func (a *Agent) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.HTTP)) }

// URL is "http://" + Addr().
func (a *Agent) URL() string { return "http://" + a.Addr() }

// Persistent reports whether the agent runs as a single-node server with its state on disk.
func (a *Agent) Persistent() bool { return a.persistent }

// LogPath is the file the agent's stdout and stderr go to (appended to across restarts).
func (a *Agent) LogPath() string { return filepath.Join(a.root, "consul.log") }

// DataDir is the agent's data directory; in -dev mode Consul keeps its state in memory instead.
func (a *Agent) DataDir() string { return a.dataDir() }

func (a *Agent) dataDir() string    { return filepath.Join(a.root, "data") }
func (a *Agent) configPath() string { return filepath.Join(a.root, "config.json") }

// Client returns an API client for the agent. It ignores CONSUL_HTTP_ADDR and friends, except that
// the api package still reads a token from CONSUL_HTTP_TOKEN(_FILE), which an agent without ACLs ignores.
// Clients keep working across Restart (they reconnect to the same address).
func (a *Agent) Client(t testing.TB) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{
		Address:    a.Addr(),
		Scheme:     "http",
		HttpClient: &http.Client{Transport: a.transport},
	})
	if err != nil {
		t.Fatalf("consulagent: api client: %v", err)
	}
	return c
}

// Running reports whether the agent process is up (it may not be ready yet during Start).
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc != nil && !a.proc.exited()
}

// Start starts a stopped agent again on the same ports and data directory and waits until it is usable.
func (a *Agent) Start(t testing.TB) {
	t.Helper()
	if err := a.start(t); err != nil {
		t.Fatalf("consulagent: restart: %v", err) // the cleanup prints the log's tail
	}
}

// Restart stops the agent gracefully and starts it again on the same ports and data directory.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop(t)
	a.Start(t)
}

// Stop stops the agent: SIGINT, then SIGKILL if it has not exited after StopTimeout. Stopping a
// stopped agent does nothing. A server agent does not leave the cluster on SIGINT, so its state
// survives for Start.
func (a *Agent) Stop(t testing.TB) {
	t.Helper()
	if err := a.stop(); err != nil {
		t.Logf("consulagent: stop: %v", err)
	}
}

func (a *Agent) stop() error {
	a.mu.Lock()
	p := a.proc
	a.stopping = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.proc, a.stopping = nil, false
		a.mu.Unlock()
		a.transport.CloseIdleConnections()
	}()
	if p == nil || p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("consul did not exit within %s of SIGINT; killed it", StopTimeout)
	}
}

func (a *Agent) cleanup(t testing.TB) {
	a.mu.Lock()
	p, stopping := a.proc, a.stopping
	a.mu.Unlock()
	if p != nil && p.exited() && !stopping {
		t.Logf("consulagent: consul exited on its own during the test: %v", p.err)
		a.printLog(t)
	} else if t.Failed() {
		a.printLog(t)
	}
	if err := a.stop(); err != nil {
		t.Logf("consulagent: %v", err)
	}
}

func (a *Agent) printLog(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(a.LogPath())
	if err != nil {
		t.Logf("consulagent: reading agent log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > logTail {
		lines = lines[len(lines)-logTail:]
	}
	t.Logf("consulagent: last %d lines of %s:\n%s", len(lines), a.LogPath(), strings.Join(lines, "\n"))
}

// config is the agent's JSON configuration. Everything binds to 127.0.0.1 only; DNS, gRPC and HTTPS
// are disabled, the other listeners get the free ports.
func (a *Agent) config() map[string]any {
	c := map[string]any{
		"node_name":            nodeName,
		"bind_addr":            "127.0.0.1",
		"client_addr":          "127.0.0.1",
		"advertise_addr":       "127.0.0.1",
		"advertise_addr_wan":   "127.0.0.1",
		"disable_update_check": true,
		"log_level":            "INFO",
		"ports": map[string]any{
			"http":     a.ports.HTTP,
			"serf_lan": a.ports.SerfLAN,
			"serf_wan": a.ports.SerfWAN,
			"server":   a.ports.Server,
			"https":    -1,
			"dns":      -1,
			"grpc":     -1,
			"grpc_tls": -1,
		},
		// Stop must not make a server leave: a lone server that left cannot elect itself again.
		"leave_on_terminate":      false,
		"skip_leave_on_interrupt": true,
		"ui_config":               map[string]any{"enabled": false},
		"connect":                 map[string]any{"enabled": false},
	}
	if a.persistent {
		// Fastest Raft timings Consul allows (the default multiplier, 5, is for production).
		c["performance"] = map[string]any{"raft_multiplier": 1}
	}
	for k, v := range a.extra {
		c[k] = v
	}
	return c
}

func (a *Agent) args() []string {
	args := []string{"agent", "-config-file=" + a.configPath()}
	if a.persistent {
		return append(args, "-server", "-bootstrap-expect=1", "-data-dir="+a.dataDir())
	}
	return append(args, "-dev")
}

// start launches the process and waits until it is ready. On error the process is stopped.
func (a *Agent) start(t testing.TB) error {
	t.Helper()
	a.mu.Lock()
	running := a.proc != nil && !a.proc.exited()
	a.mu.Unlock()
	if running {
		return errors.New("agent is already running")
	}

	cfg, err := json.MarshalIndent(a.config(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(a.configPath(), cfg, 0o600); err != nil {
		return err
	}
	logf, err := os.OpenFile(a.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "==== consulagent: %s %s %s\n", time.Now().Format(time.RFC3339Nano), a.bin, strings.Join(a.args(), " "))

	cmd := exec.Command(a.bin, a.args()...)
	cmd.Dir = a.root
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = agentEnv()
	setSysProcAttr(cmd)

	p := &process{cmd: cmd, done: make(chan struct{})}
	began := time.Now()
	if err := startProcess(p, logf); err != nil {
		return fmt.Errorf("starting %s: %w", a.bin, err)
	}
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()

	if err := a.waitReady(p, began); err != nil {
		_ = a.stop()
		if portInUse(a.LogPath(), logStart) {
			return fmt.Errorf("%w: %v", errPortInUse, err)
		}
		return err
	}
	mode := "dev"
	if a.persistent {
		mode = "persistent"
	}
	t.Logf("consulagent: %s agent ready at %s in %s", mode, a.Addr(), time.Since(began).Round(time.Millisecond))
	return nil
}

// startProcess starts the process from a goroutine locked to its OS thread, which stays alive until
// the process exits: on Linux the child gets SIGKILL when that thread dies (Pdeathsig), so a test
// binary that is killed does not leave agents behind.
func startProcess(p *process, logf *os.File) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	err := <-started
	if err != nil {
		logf.Close()
	}
	return err
}

// agentEnv is the test's environment without CONSUL_* variables, which the agent would otherwise read.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") {
			env = append(env, kv)
		}
	}
	return env
}

func portInUse(logPath string, from int64) bool {
	b, err := os.ReadFile(logPath)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return bytes.Contains(b[from:], []byte("address already in use"))
}

func (a *Agent) waitReady(p *process, began time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), began.Add(ReadyTimeout))
	defer cancel()
	c, err := api.NewClient(&api.Config{
		Address:    a.Addr(),
		Scheme:     "http",
		HttpClient: &http.Client{Transport: a.transport, Timeout: 5 * time.Second},
	})
	if err != nil {
		return err
	}
	q := (&api.QueryOptions{}).WithContext(ctx)
	w := (&api.WriteOptions{}).WithContext(ctx)

	steps := []struct {
		name  string
		ready func() error
	}{
		{"HTTP API answers and a leader is elected", func() error {
			leader, err := c.Status().LeaderWithQueryOptions(q)
			if err != nil {
				return err
			}
			if leader == "" {
				return errors.New("no leader yet")
			}
			return nil
		}},
		{"the agent's node is in the catalog", func() error {
			n, _, err := c.Catalog().Node(nodeName, q)
			if err != nil {
				return err
			}
			if n == nil || n.Node == nil {
				return errors.New("node not registered yet")
			}
			return nil
		}},
		{"the catalog is writable", func() error {
			// A session is a Raft write that needs the node registered with a passing serfHealth
			// check, and it leaves nothing behind once destroyed.
			id, _, err := c.Session().Create(&api.SessionEntry{Name: "consulagent-ready", TTL: "10s"}, w)
			if err != nil {
				return err
			}
			_, err = c.Session().Destroy(id, w)
			return err
		}},
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, s := range steps {
		for {
			err := s.ready()
			if err == nil {
				break
			}
			select {
			case <-p.done:
				return fmt.Errorf("consul exited before it was ready (%v); waiting until %s, last error: %v", p.err, s.name, err)
			case <-ctx.Done():
				return fmt.Errorf("consul not ready after %s: waiting until %s, last error: %v", ReadyTimeout, s.name, err)
			case <-tick.C:
			}
		}
	}
	return nil
}

// freePorts finds distinct loopback ports that are free for TCP (all) and UDP (serf's two).
func freePorts() (ports, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	pick := func(udp bool) (int, error) {
		for range 20 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			held = append(held, l)
			port := l.Addr().(*net.TCPAddr).Port
			if !udp {
				return port, nil
			}
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // keep the TCP listener held so the next try gets another port
			}
			held = append(held, u)
			return port, nil
		}
		return 0, errors.New("no port free for both TCP and UDP")
	}
	var p ports
	var err error
	if p.HTTP, err = pick(false); err != nil {
		return p, err
	}
	if p.Server, err = pick(false); err != nil {
		return p, err
	}
	if p.SerfLAN, err = pick(true); err != nil {
		return p, err
	}
	if p.SerfWAN, err = pick(true); err != nil {
		return p, err
	}
	return p, nil
}

// RegisterService registers a service with the agent (PUT /v1/agent/service/register), as Registrator
// does; the agent syncs it, and its checks, into the catalog.
func (a *Agent) RegisterService(t testing.TB, reg api.AgentServiceRegistration) {
	t.Helper()
	if err := a.Client(t).Agent().ServiceRegister(&reg); err != nil {
		t.Fatalf("consulagent: registering service %q: %v", reg.ID, err)
	}
}

// Deregister deregisters a service from the agent, and so from the catalog, by its ID.
func (a *Agent) Deregister(t testing.TB, id string) {
	t.Helper()
	if err := a.Client(t).Agent().ServiceDeregister(id); err != nil {
		t.Fatalf("consulagent: deregistering service %q: %v", id, err)
	}
}

// SetTTL sets the status of a TTL check: api.HealthPassing, api.HealthWarning or api.HealthCritical
// ("passing", "warning", "critical"). A service's single check registered with Check has the ID
// "service:<service ID>"; with Checks, "service:<service ID>:<n>" (n from 1) unless given a CheckID.
func (a *Agent) SetTTL(t testing.TB, checkID, status string) {
	t.Helper()
	switch status {
	case api.HealthPassing, api.HealthWarning, api.HealthCritical:
	default:
		t.Fatalf("consulagent: SetTTL(%q): status %q is not passing, warning or critical", checkID, status)
	}
	if err := a.Client(t).Agent().UpdateTTL(checkID, "set by consulagent.SetTTL", status); err != nil {
		t.Fatalf("consulagent: setting TTL check %q to %s: %v", checkID, status, err)
	}
}
