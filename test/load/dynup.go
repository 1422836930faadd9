package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dynup/dynup/registry"
)

// target is the dynup under load: where to reach it and which process to measure.
type target struct {
	admin, xds string
	pid        int
	stop       func() error
	logs       *tail
}

// seedConfig writes the seeded upstreams through the file store dynup will open. Seeding before dynup
// starts loads 10,000 upstreams in a second instead of 10,000 admin writes.
func seedConfig(dir string, ups []registry.Upstream) error {
	backend, err := registry.NewFileBackend(dir)
	if err != nil {
		return err
	}
	cfg := registry.Config{Upstreams: make(map[string]registry.Upstream, len(ups))}
	for _, u := range ups {
		cfg.Upstreams[u.Name] = u
	}
	return backend.SaveAll(cfg, 1)
}

// buildDynup builds ./cmd/dynup of the module the tool runs in.
func buildDynup(dir string) (string, error) {
	bin := filepath.Join(dir, "dynup")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/dynup/dynup/cmd/dynup")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build dynup: %v\n%s", err, out)
	}
	return bin, nil
}

// startDynup runs bin on a data dir with loopback ports chosen by the kernel and waits until it listens.
func startDynup(ctx context.Context, bin, dataDir string, extra []string) (*target, error) {
	args := append([]string{"--admin-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--log-format", "json", "--log-level", "info"}, extra...)
	cmd := exec.Command(bin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSUL_") && !strings.HasPrefix(kv, "DYNUP_ADMIN_TOKEN") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	logs := &tail{}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			logs.add(sc.Text())
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "listening" {
				select {
				case ready <- rec:
				default:
				}
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := &target{pid: cmd.Process.Pid, logs: logs, stop: func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			return errors.New("dynup did not stop within 20s of SIGTERM")
		}
	}}
	select {
	case rec := <-ready:
		t.admin, _ = rec["admin"].(string)
		t.xds, _ = rec["xds"].(string)
		return t, nil
	case err := <-exited:
		return nil, fmt.Errorf("dynup exited before listening (%v):\n%s", err, logs)
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("dynup did not listen in time:\n%s", logs)
}

// tail keeps the last lines dynup logged, for error messages. The log reader adds while errors read.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 200 {
		t.lines = t.lines[100:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// admin is a client of dynup's admin API.
type admin struct {
	base   string
	client *http.Client
}

func newAdmin(addr string) *admin {
	return &admin{base: "http://" + addr, client: &http.Client{Timeout: time.Minute}}
}

// putServers replaces an upstream's servers and returns the change id.
func (a *admin) putServers(name string, servers []registry.Server) (uint64, error) {
	type server struct {
		Host string `json:"host"`
		Port int    `json:"port"`
		Zone string `json:"zone,omitempty"`
	}
	body := struct {
		Servers []server `json:"servers"`
	}{}
	for _, s := range servers {
		body.Servers = append(body.Servers, server{s.Host, s.Port, s.Zone})
	}
	b, _ := json.Marshal(body)
	resp, err := a.client.Post(a.base+"/upstream/"+name, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /upstream/%s: %d %s", name, resp.StatusCode, out)
	}
	return strconv.ParseUint(resp.Header.Get("X-Dynup-Change"), 10, 64)
}

// acceptedAt returns when dynup accepted a change.
func (a *admin) acceptedAt(id uint64) (time.Time, error) {
	var body struct {
		Change struct {
			AcceptedAt time.Time `json:"accepted_at"`
		} `json:"change"`
	}
	if err := a.getJSON("/changes/"+strconv.FormatUint(id, 10), &body); err != nil {
		return time.Time{}, err
	}
	if body.Change.AcceptedAt.IsZero() {
		return time.Time{}, fmt.Errorf("change %d has no accepted_at", id)
	}
	return body.Change.AcceptedAt, nil
}

func (a *admin) getJSON(path string, v any) error {
	resp, err := a.client.Get(a.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

func (a *admin) metricsText() (string, error) {
	resp, err := a.client.Get(a.base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
