package consulagent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// eventually polls f until it returns nil, failing the test with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func putKV(t *testing.T, c *api.Client, key, value string) {
	t.Helper()
	if _, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("kv put %s: %v", key, err)
	}
}

func getKV(t *testing.T, c *api.Client, key string) (string, bool) {
	t.Helper()
	kv, _, err := c.KV().Get(key, nil)
	if err != nil {
		t.Fatalf("kv get %s: %v", key, err)
	}
	if kv == nil {
		return "", false
	}
	return string(kv.Value), true
}

// passingInstances is GET /v1/health/service/<name>?passing.
func passingInstances(c *api.Client, name string) ([]*api.ServiceEntry, error) {
	entries, _, err := c.Health().Service(name, "", true, nil)
	return entries, err
}

func webService(id string, port int) api.AgentServiceRegistration {
	return api.AgentServiceRegistration{
		ID:      id,
		Name:    "web",
		Address: "127.0.0.1",
		Port:    port,
		Tags:    []string{"dynup-test"},
		Check:   &api.AgentServiceCheck{TTL: "30s"}, // check ID "service:<id>", critical until set
	}
}

func TestDevAgent(t *testing.T) {
	a := Start(t)
	if !a.Running() {
		t.Fatal("Running() = false right after Start")
	}
	if !strings.HasPrefix(a.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", a.Addr())
	}
	c := a.Client(t)

	putKV(t, c, "dynup/test/key", "hello")
	if v, ok := getKV(t, c, "dynup/test/key"); !ok || v != "hello" {
		t.Fatalf("kv get = %q, %v; want \"hello\", true", v, ok)
	}

	a.RegisterService(t, webService("web-1", 8080))
	// A new TTL check is critical: the instance is registered but not passing.
	eventually(t, 10*time.Second, func() error {
		all, _, err := c.Health().Service("web", "", false, nil)
		if err != nil {
			return err
		}
		if len(all) != 1 {
			return fmt.Errorf("%d instances of web in the catalog, want 1", len(all))
		}
		return nil
	})
	if got, err := passingInstances(c, "web"); err != nil || len(got) != 0 {
		t.Fatalf("passing instances before SetTTL = %d (err %v), want 0", len(got), err)
	}

	a.SetTTL(t, "service:web-1", api.HealthPassing)
	eventually(t, 10*time.Second, func() error {
		got, err := passingInstances(c, "web")
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Service.ID != "web-1" || got[0].Service.Port != 8080 {
			return fmt.Errorf("passing instances of web = %d, want web-1:8080", len(got))
		}
		return nil
	})

	a.SetTTL(t, "service:web-1", api.HealthCritical)
	eventually(t, 10*time.Second, func() error {
		if got, err := passingInstances(c, "web"); err != nil || len(got) != 0 {
			return fmt.Errorf("%d passing instances after critical (err %v), want 0", len(got), err)
		}
		return nil
	})

	a.Deregister(t, "web-1")
	eventually(t, 10*time.Second, func() error {
		services, _, err := c.Catalog().Services(nil)
		if err != nil {
			return err
		}
		if _, ok := services["web"]; ok {
			return errors.New("web still in the catalog")
		}
		return nil
	})
}

func TestPersistentRestart(t *testing.T) {
	a := Start(t, Persistent())
	c := a.Client(t) // kept across the restart: it must reconnect to the same address
	addr := a.Addr()

	putKV(t, c, "dynup/test/persisted", "survives")
	a.RegisterService(t, webService("web-p", 9090))
	a.SetTTL(t, "service:web-p", api.HealthPassing)
	eventually(t, 10*time.Second, func() error {
		got, err := passingInstances(c, "web")
		if err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("%d passing instances of web, want 1", len(got))
		}
		return nil
	})

	began := time.Now()
	a.Stop(t)
	stopped := time.Since(began)
	if a.Running() {
		t.Fatal("Running() = true after Stop")
	}
	if _, _, err := c.KV().Get("dynup/test/persisted", nil); err == nil {
		t.Fatal("KV get succeeded while the agent was stopped")
	}
	began = time.Now()
	a.Start(t)
	t.Logf("stop took %s, start again took %s", stopped.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if a.Addr() != addr {
		t.Fatalf("Addr() changed across restart: %s -> %s", addr, a.Addr())
	}

	if v, ok := getKV(t, c, "dynup/test/persisted"); !ok || v != "survives" {
		t.Fatalf("after restart kv get = %q, %v; want \"survives\", true", v, ok)
	}
	// The catalog (Raft) and the agent's own registration (persisted in the data dir) both survive.
	eventually(t, 10*time.Second, func() error {
		got, _, err := c.Catalog().Service("web", "", nil)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].ServiceID != "web-p" {
			return fmt.Errorf("%d catalog instances of web after restart, want web-p", len(got))
		}
		return nil
	})
	svcs, err := c.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svcs["web-p"]; !ok {
		t.Fatal("agent lost the registration of web-p across the restart")
	}
	// The TTL check still works after the restart.
	a.SetTTL(t, "service:web-p", api.HealthPassing)
	eventually(t, 10*time.Second, func() error {
		if got, err := passingInstances(c, "web"); err != nil || len(got) != 1 {
			return fmt.Errorf("%d passing instances after restart (err %v), want 1", len(got), err)
		}
		return nil
	})

	began = time.Now()
	a.Restart(t)
	t.Logf("Restart took %s", time.Since(began).Round(time.Millisecond))
	if v, ok := getKV(t, c, "dynup/test/persisted"); !ok || v != "survives" {
		t.Fatalf("after second restart kv get = %q, %v", v, ok)
	}
}

func TestTwoAgentsAreIsolated(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("both agents on %s", a.Addr())
	}
	putKV(t, a.Client(t), "only/in/a", "1")
	if _, ok := getKV(t, b.Client(t), "only/in/a"); ok {
		t.Fatal("key written to agent a is visible in agent b")
	}
}

func TestCachedBinaryPath(t *testing.T) {
	t.Setenv("CONSUL_VERSION", "")
	t.Setenv("DYNUP_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, want := CachedBinaryPath(), "/home/u/.cache/dynup/consul-v1.22.0/consul"; got != want {
		t.Errorf("default: %s, want %s", got, want)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("CONSUL_VERSION", "v1.2.3")
	if got, want := CachedBinaryPath(), "/xdg/dynup/consul-v1.2.3/consul"; got != want {
		t.Errorf("XDG_CACHE_HOME: %s, want %s", got, want)
	}
	t.Setenv("DYNUP_CACHE_DIR", "/c")
	if got, want := CachedBinaryPath(), "/c/consul-v1.2.3/consul"; got != want {
		t.Errorf("DYNUP_CACHE_DIR: %s, want %s", got, want)
	}
}

// recorder is a testing.TB that records Skip and Fatal instead of ending the goroutine.
type recorder struct {
	testing.TB
	skipped, fatal string
}

type stop struct{}

func (r *recorder) Helper()                      {}
func (r *recorder) Skip(args ...any)             { r.skipped = fmt.Sprint(args...); panic(stop{}) }
func (r *recorder) Fatal(args ...any)            { r.fatal = fmt.Sprint(args...); panic(stop{}) }
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...); panic(stop{}) }

func (r *recorder) binary() (path string) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stop); !ok {
				panic(v)
			}
		}
	}()
	return Binary(r)
}

func TestBinaryLookup(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("DYNUP_CONSUL_BIN", "")
	t.Setenv("DYNUP_CACHE_DIR", empty)
	t.Setenv("PATH", empty)

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	r.binary()
	if !strings.Contains(r.skipped, "bash test/consulagent/build-consul.sh") || r.fatal != "" {
		t.Errorf("without CI: skipped %q, fatal %q; want a skip that says how to build", r.skipped, r.fatal)
	}

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	r.binary()
	if !strings.Contains(r.fatal, "bash test/consulagent/build-consul.sh") || r.skipped != "" {
		t.Errorf("with CI=true: skipped %q, fatal %q; want a failure that says how to build", r.skipped, r.fatal)
	}

	fake := filepath.Join(empty, "consul-v1.22.0", "consul")
	if err := os.MkdirAll(filepath.Dir(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONSUL_VERSION", "")
	if got := (&recorder{TB: t}).binary(); got != fake {
		t.Errorf("cached binary: got %q, want %q", got, fake)
	}

	t.Setenv("DYNUP_CONSUL_BIN", filepath.Join(empty, "missing"))
	r = &recorder{TB: t}
	r.binary()
	if r.fatal == "" {
		t.Error("DYNUP_CONSUL_BIN pointing nowhere: want a failure")
	}
}
