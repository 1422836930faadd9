package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// DynupBinary builds ./cmd/dynup once per test process (with -race when the tests use it) and returns its
// path. DYNUP_BIN overrides it with a prebuilt binary.
func DynupBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DYNUP_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dynup-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dynup")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "github.com/dynup/dynup/cmd/dynup")...)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build dynup: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Dynup is a running dynup process.
type Dynup struct {
	AdminAddr string
	XDSAddr   string
	DataDir   string
	args      []string
	cmd       *exec.Cmd
	logs      *logBuffer
	exited    chan struct{}
}

// StartDynup runs dynup on dataDir with loopback ports chosen by the kernel. Extra flags are appended.
func StartDynup(t testing.TB, dataDir string, extra ...string) *Dynup {
	t.Helper()
	d := &Dynup{DataDir: dataDir, args: extra}
	d.start(t, "127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(func() {
		d.Stop(t)
		if t.Failed() {
			t.Logf("dynup logs:\n%s", d.logs.String())
		}
	})
	return d
}

func (d *Dynup) start(t testing.TB, adminAddr, xdsAddr string) {
	t.Helper()
	args := append([]string{"--admin-addr", adminAddr, "--xds-addr", xdsAddr, "--data-dir", d.DataDir,
		"--log-format", "json", "--log-level", "debug"}, d.args...)
	d.cmd = exec.Command(DynupBinary(t), args...)
	d.cmd.Env = withoutConsulEnv(os.Environ()) // Consul mode only when a test asks for it with --consul-addr
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.logs = &logBuffer{}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			d.logs.Write(append(append([]byte{}, line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "listening" {
				select {
				case ready <- rec:
				default:
				}
			}
		}
	}()
	go func() { d.cmd.Wait(); close(d.exited) }()
	select {
	case rec := <-ready:
		d.AdminAddr, d.XDSAddr = rec["admin"].(string), rec["xds"].(string)
	case <-d.exited:
		t.Fatalf("dynup exited before listening:\n%s", d.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("dynup did not start listening within 60s:\n%s", d.logs.String())
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *Dynup) Stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("dynup exited with %d after SIGTERM", code)
		}
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("dynup did not stop within 15s of SIGTERM")
	}
}

// Restart stops dynup and starts it again on the same data dir and the same ports, so that connected
// clients reconnect to it.
func (d *Dynup) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.start(t, d.AdminAddr, d.XDSAddr)
}

// Logs returns what dynup has logged so far.
func (d *Dynup) Logs() string { return d.logs.String() }

// Do sends an admin API request and returns the status and body.
func (d *Dynup) Do(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+d.AdminAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// MustDo is Do that fails the test unless the status is 200.
func (d *Dynup) MustDo(t testing.TB, method, path, body string) []byte {
	t.Helper()
	code, b := d.Do(t, method, path, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	return b
}

// GetJSON decodes a GET answer into v.
func (d *Dynup) GetJSON(t testing.TB, path string, v any) {
	t.Helper()
	if err := json.Unmarshal(d.MustDo(t, http.MethodGet, path, ""), v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func withoutConsulEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CONSUL_") {
			out = append(out, kv)
		}
	}
	return out
}
