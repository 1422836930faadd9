package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// consulNode is the name of the benchmark's only Consul node.
const consulNode = "dynup-compare"

// startConsul runs a Consul agent in dev mode (one in-memory server, as test/consulagent and demo/local do),
// every listener on 127.0.0.1, and waits until it has a leader and its node is in the catalog: before that,
// registrations fail. test/consulagent cannot be reused here: it needs a testing.TB.
func startConsul(procs *children, dir, bin string, env []string) (string, error) {
	free, err := freePorts(4)
	if err != nil {
		return "", err
	}
	config := map[string]any{
		"node_name":            consulNode,
		"bind_addr":            "127.0.0.1",
		"client_addr":          "127.0.0.1",
		"advertise_addr":       "127.0.0.1",
		"disable_update_check": true,
		"ports": map[string]any{
			"http": free[0], "server": free[1], "serf_lan": free[2], "serf_wan": free[3],
			"dns": -1, "grpc": -1, "grpc_tls": -1, "https": -1,
		},
	}
	text, _ := json.MarshalIndent(config, "", "  ")
	configPath := filepath.Join(dir, "consul.json")
	if err := os.WriteFile(configPath, text, 0o600); err != nil {
		return "", err
	}
	c, _, err := startChild("consul", filepath.Join(dir, "consul.log"), bin,
		[]string{"agent", "-dev", "-config-file=" + configPath}, env, "", 0)
	if err != nil {
		return "", err
	}
	procs.add(c)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(free[0]))
	return addr, waitConsul(c, addr)
}

func waitConsul(c *child, addr string) error {
	client, err := consulClient(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, err := client.Status().LeaderWithQueryOptions(q)
		if err == nil && leader == "" {
			err = errors.New("no leader yet")
		}
		if err == nil {
			var node *api.CatalogNode
			node, _, err = client.Catalog().Node(consulNode, q)
			if err == nil && node == nil {
				err = errors.New("its node is not in the catalog yet")
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("consul exited (%v); the end of %s:\n%s", c.err, c.logPath, tail(c.logPath))
		case <-ctx.Done():
			return fmt.Errorf("consul not ready within a minute: %v; the end of %s:\n%s", err, c.logPath, tail(c.logPath))
		case <-tick.C:
		}
	}
}

// consulClient talks to the benchmark's agent only, whatever CONSUL_HTTP_* the shell sets.
func consulClient(addr string) (*api.Client, error) {
	return api.NewClient(&api.Config{
		Address:    addr,
		Scheme:     "http",
		HttpClient: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second},
	})
}

// freePorts returns n distinct loopback ports that were free for TCP and UDP (serf uses both) a moment ago.
func freePorts(n int) ([]int, error) {
	var held []interface{ Close() error }
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20*n {
			return nil, errors.New("no free loopback ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // the TCP listener stays held, so the next try gets another port
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// registrar starts instances and registers them with the Consul agent, as Registrator does for containers:
// no health check, so an instance is passing as soon as the agent has it.
type registrar struct {
	agent *api.Agent
	seq   int
}

func (r *registrar) add() (*backend, error) {
	r.seq++
	b, err := startBackend(fmt.Sprintf("%s-%03d", service, r.seq))
	if err != nil {
		return nil, err
	}
	if err := r.agent.ServiceRegister(&api.AgentServiceRegistration{ID: b.id, Name: service, Address: "127.0.0.1", Port: b.port}); err != nil {
		b.stop()
		return nil, fmt.Errorf("registering %s: %w", b.id, err)
	}
	return b, nil
}

func (r *registrar) remove(b *backend) error {
	if err := r.agent.ServiceDeregister(b.id); err != nil {
		return fmt.Errorf("deregistering %s: %w", b.id, err)
	}
	return nil
}
