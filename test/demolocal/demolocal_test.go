// Package demolocal runs `make demo-local`'s topology (demo/local: real Consul, dynup in Consul mode, the
// three demo backends registered in Consul, and a gRPC-Go xDS client standing in for Envoy) and checks the
// steps of docs/demo.md's walkthrough end to end, in order, as a user would run them.
package demolocal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"sigs.k8s.io/yaml"

	"github.com/dynup/dynup/test/consulagent"
	"github.com/dynup/dynup/test/harness"
)

// topology is demo/local's --ready-json line.
type topology struct {
	Dir      string         `json:"dir"`
	Consul   string         `json:"consul"`
	Admin    string         `json:"admin"`
	XDS      string         `json:"xds"`
	HTTP     string         `json:"http"`
	PIDs     map[string]int `json:"pids"`
	Backends []struct {
		Name    string `json:"name"`
		Service string `json:"service"`
		Addr    string `json:"addr"`
		PID     int    `json:"pid"`
	} `json:"backends"`
}

func (tp *topology) backendPID(name string) int {
	for _, b := range tp.Backends {
		if b.Name == name {
			return b.PID
		}
	}
	return 0
}

// repoRoot is the module root, from this file's directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// lockedBuffer collects a process's output for the failure log while the process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startDemo builds demo/local and runs it as `make demo-local` does, on ports the kernel picks. dynup is
// the harness's build (with -race under -race); the backends and the xDS client are built by demo/local
// itself, as for a user. It stops the demo when the test ends and checks that it exits cleanly, leaving no
// process behind.
func startDemo(t *testing.T) *topology {
	t.Helper()
	consul := consulagent.Binary(t)
	dynup := harness.DynupBinary(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "demo-local")
	build := exec.Command("go", "build", "-o", bin, "github.com/dynup/dynup/demo/local")
	build.Dir = repoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build demo/local: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "--ready-json", "--dir", filepath.Join(dir, "run"), "--consul-bin", consul, "--dynup-bin", dynup,
		"--consul-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--listen", "127.0.0.1:0")
	cmd.Dir = repoRoot()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	lines := make(chan string, 1)
	var rest lockedBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(&rest, stdout)
	}()

	var tp topology
	t.Cleanup(func() { stopDemo(t, cmd, exited, &tp, &stderr) })
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &tp); err != nil {
			t.Fatalf("first line of demo-local is not its --ready-json line: %v\n%s", err, line)
		}
	case <-exited:
		t.Fatalf("demo-local exited before it was ready:\n%s", stderr.String())
	case <-time.After(5 * time.Minute): // it builds two binaries first
		t.Fatalf("demo-local not ready within 5 minutes:\n%s", stderr.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo-local stdout:\n%s\nstderr:\n%s", rest.String(), stderr.String())
			for _, name := range []string{"dynup", "xdsclient"} {
				if b, err := os.ReadFile(filepath.Join(tp.Dir, name+".log")); err == nil {
					t.Logf("%s.log:\n%s", name, lastLines(string(b), 60))
				}
			}
		}
	})
	return &tp
}

// stopDemo sends SIGTERM, as Ctrl-C does, and checks that demo-local exits 0 having stopped every process.
func stopDemo(t *testing.T, cmd *exec.Cmd, exited chan struct{}, tp *topology, stderr *lockedBuffer) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Errorf("demo-local did not stop within 60s of SIGTERM:\n%s", stderr.String())
		return
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("demo-local exited %d after SIGTERM:\n%s", code, stderr.String())
	}
	pids := map[string]int{}
	for name, pid := range tp.PIDs {
		pids[name] = pid
	}
	for _, b := range tp.Backends {
		pids[b.Name] = b.PID
	}
	for name, pid := range pids {
		// demo-local waited for each of its children, so none is left, not even as a zombie.
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after demo-local stopped (kill 0: %v)", name, pid, err)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// client talks to loopback only, never through a proxy from the environment.
var client = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 15 * time.Second}

// curl sends a request, with a Host header when host is not empty, and returns the status and body.
func curl(method, url, host, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustCurl is curl that fails the test on a transport error or an unexpected status.
func mustCurl(t *testing.T, want int, method, url, host, body string) string {
	t.Helper()
	code, got, err := curl(method, url, host, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, code, got, want)
	}
	return got
}

// answers sends n requests for host through the xDS client (`curl -H "Host: …" localhost:10000`) and
// returns the backends that answered.
func (tp *topology) answers(host string, n int) ([]string, error) {
	seen := map[string]bool{}
	for range n {
		code, body, err := curl(http.MethodGet, "http://"+tp.HTTP+"/", host, "")
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("Host %s: %d %s", host, code, body)
		}
		seen[strings.TrimSpace(body)] = true
	}
	var out []string
	for b := range seen {
		out = append(out, b)
	}
	sort.Strings(out)
	return out, nil
}

// waitAnswers waits until requests for host are answered by exactly the backends want.
func (tp *topology) waitAnswers(t *testing.T, host string, want ...string) {
	t.Helper()
	sort.Strings(want)
	harness.Until(t, 30*time.Second, func() error {
		got, err := tp.answers(host, 10*len(want))
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("Host %s answered by %v, want %v", host, got, want)
		}
		return nil
	})
}

// load sends requests for host until stop is called, which returns how many succeeded and the failures.
func (tp *topology) load(host string) (stop func() (ok int64, failures []string)) {
	var okCount atomic.Int64
	var mu sync.Mutex
	var failures []string
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			default:
			}
			code, body, err := curl(http.MethodGet, "http://"+tp.HTTP+"/", host, "")
			if err == nil && code == http.StatusOK {
				okCount.Add(1)
				continue
			}
			mu.Lock()
			failures = append(failures, fmt.Sprintf("%d %q %v", code, body, err))
			mu.Unlock()
		}
	}()
	return func() (int64, []string) {
		close(done)
		<-finished
		return okCount.Load(), failures
	}
}

func TestWalkthrough(t *testing.T) {
	tp := startDemo(t)
	admin := "http://" + tp.Admin

	// Same backends as docker-compose.yml, so the walkthrough's output is the same for both.
	t.Run("backends match docker-compose.yml", func(t *testing.T) {
		want := composeBackends(t)
		got := map[string]string{}
		for _, b := range tp.Backends {
			got[b.Name] = b.Service
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("demo-local runs %v, docker-compose.yml %v", got, want)
		}
	})

	ok := t.Run("curl reaches the imgprocess backends", func(t *testing.T) {
		tp.waitAnswers(t, "imgprocess", "imgprocess-1", "imgprocess-2")
		tp.waitAnswers(t, "imageinfo", "imageinfo-1")
		// The host's port is not part of the domain, as with Envoy.
		tp.waitAnswers(t, "imgprocess:10000", "imgprocess-1", "imgprocess-2")
	})
	ok = ok && t.Run("POST /upstream/imgprocess changes its servers with no failed request", func(t *testing.T) {
		stop := tp.load("imgprocess")
		// The walkthrough's step: imageinfo's server, read in dyups' text form, becomes imgprocess's static
		// server; the catalog's two instances stay.
		server := mustCurl(t, http.StatusOK, http.MethodGet, admin+"/upstream/imageinfo?format=dyups", "", "")
		if !strings.HasPrefix(server, "server 127.0.0.1:") {
			t.Fatalf("GET /upstream/imageinfo?format=dyups: %q", server)
		}
		if got := mustCurl(t, http.StatusOK, http.MethodPost, admin+"/upstream/imgprocess", "", server); strings.TrimSpace(got) != "success" {
			t.Errorf("POST answered %q, want dyups' success", got)
		}
		tp.waitAnswers(t, "imgprocess", "imgprocess-1", "imgprocess-2", "imageinfo-1")
		n, failures := stop()
		if len(failures) > 0 {
			t.Errorf("%d of %d requests failed during the change; first: %s", len(failures), n+int64(len(failures)), failures[0])
		}
		if n == 0 {
			t.Error("no request went through during the change")
		}
		t.Logf("%d requests during the change, none failed", n)
	})
	ok = ok && t.Run("a stopped backend disappears through Consul", func(t *testing.T) {
		pid := tp.backendPID("imgprocess-2")
		if pid == 0 {
			t.Fatal("no imgprocess-2 in the topology")
		}
		// What `docker compose stop imgprocess-2` does; demo-local deregisters it as Registrator would.
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		consul, err := api.NewClient(&api.Config{Address: tp.Consul, HttpClient: client})
		if err != nil {
			t.Fatal(err)
		}
		harness.Until(t, 30*time.Second, func() error {
			entries, _, err := consul.Catalog().Service("imgprocess", "", nil)
			if err != nil {
				return err
			}
			var ids []string
			for _, e := range entries {
				ids = append(ids, e.ServiceID)
			}
			if !slices.Equal(ids, []string{"imgprocess-1"}) {
				return fmt.Errorf("Consul's imgprocess instances: %v", ids)
			}
			return nil
		})
		tp.waitAnswers(t, "imgprocess", "imgprocess-1", "imageinfo-1")
	})
	if ok {
		t.Run("Lua refuses DELETE on the admin host", func(t *testing.T) { testLuaStep(t, tp) })
	}
}

// testLuaStep: the admin host gets an upstream, the seed's snippet is staged, activated and dry-run.
// Only Envoy runs Lua filters, so with the gRPC stand-in the dry run is where the refusal is seen.
func testLuaStep(t *testing.T, tp *topology) {
	admin := "http://" + tp.Admin
	server := mustCurl(t, http.StatusOK, http.MethodGet, admin+"/upstream/imageinfo?format=dyups", "", "")
	mustCurl(t, http.StatusOK, http.MethodPost, admin+"/upstream/admin.upyun.com", "", server)
	tp.waitAnswers(t, "admin.upyun.com", "imageinfo-1")

	source, err := os.ReadFile(filepath.Join(repoRoot(), "luafilters", "examples", "deny_delete_admin.lua"))
	if err != nil {
		t.Fatal(err)
	}
	const snippet = "/lua/script.admin.upyun.com" // Slardar's naming: script.<host> applies to <host>
	for _, step := range []struct{ method, path, body string }{
		{http.MethodPost, snippet, string(source)},  // stage (validated)
		{http.MethodPut, snippet + "?wait=10s", ""}, // activate, and wait for the connected nodes
	} {
		code, body, err := curl(step.method, admin+step.path, "", step.body)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusNotFound {
			t.Fatalf("%s %s answered 404 (%s): dynup has no Lua admin API yet (issue 6: POST /lua/{name} stages, "+
				"PUT activates, POST /lua/{name}/test dry-runs); the walkthrough's Lua step needs it", step.method, step.path, body)
		}
		if code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", step.method, step.path, code, body)
		}
	}

	// dryRun returns the answer and the result in it (what the snippet did).
	dryRun := func(sample string) (answer, result map[string]any) {
		t.Helper()
		code, body, err := curl(http.MethodPost, admin+snippet+"/test", "", sample)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusNotFound {
			t.Fatalf("POST %s/test answered 404 (%s): dynup has no Lua dry run endpoint yet (issue 6)", snippet, body)
		}
		if code != http.StatusOK {
			t.Fatalf("POST %s/test: %d %s", snippet, code, body)
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			t.Fatalf("dry run answer is not a JSON object: %v\n%s", err, body)
		}
		if result = findResult(answer); result == nil {
			t.Fatalf("dry run answer has no result with an \"action\": %s", body)
		}
		return answer, result
	}
	answer, deny := dryRun(`{"method":"DELETE","path":"/photos/1","headers":{"host":"admin.upyun.com"}}`)
	reply, _ := deny["respond"].(map[string]any)
	if deny["action"] != "respond" || reply["status"] != float64(403) || !strings.Contains(fmt.Sprint(reply["body"]), "DELETE is not allowed") {
		t.Errorf("DELETE on admin.upyun.com: dry run %v, want a 403 reply", deny)
	}
	// Envoy runs script.<host> for that host only.
	if answer["applies_to_host"] != true {
		t.Errorf("dry run for admin.upyun.com: applies_to_host = %v, want true (%v)", answer["applies_to_host"], answer)
	}
	for _, tc := range []struct {
		sample  string
		applies bool
	}{
		{`{"method":"GET","path":"/photos/1","headers":{"host":"admin.upyun.com"}}`, true},
		{`{"method":"DELETE","path":"/photos/1","headers":{"host":"imgprocess"}}`, false},
	} {
		answer, r := dryRun(tc.sample)
		if r["action"] != "continue" {
			t.Errorf("%s: dry run %v, want the request to continue", tc.sample, r)
		}
		if answer["applies_to_host"] != tc.applies {
			t.Errorf("%s: applies_to_host = %v, want %v", tc.sample, answer["applies_to_host"], tc.applies)
		}
	}
}

// findResult returns the first JSON object holding a dry run's "action", wherever the answer nests it.
func findResult(v any) map[string]any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["action"].(string); ok {
			return x
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if r := findResult(x[k]); r != nil {
				return r
			}
		}
	case []any:
		for _, e := range x {
			if r := findResult(e); r != nil {
				return r
			}
		}
	}
	return nil
}

// composeBackends are docker-compose.yml's backends: BACKEND_NAME → SERVICE_NAME.
func composeBackends(t *testing.T) map[string]string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot(), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Environment map[string]string `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(text, &c); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range c.Services {
		if s.Environment["SERVICE_NAME"] != "" {
			out[s.Environment["BACKEND_NAME"]] = s.Environment["SERVICE_NAME"]
		}
	}
	return out
}
