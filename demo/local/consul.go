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

// consulNode is the name of the demo's only Consul node.
const consulNode = "dynup-demo"

// startConsul runs a Consul agent in dev mode (one in-memory server, as in docker-compose.yml), bound to
// loopback only, and waits until it has a leader and its node is in the catalog.
func startConsul(g *group, dir, bin, httpAddr string, env []string) (*child, string, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil || host != "127.0.0.1" {
		return nil, "", fmt.Errorf("--consul-addr %q: want 127.0.0.1:PORT (Consul has no authentication here)", httpAddr)
	}
	httpPort, err := strconv.Atoi(port)
	if err != nil {
		return nil, "", fmt.Errorf("--consul-addr %q: %v", httpAddr, err)
	}
	// Consul's other listeners are of no use to the demo, but serf and the server RPC port must be somewhere:
	// ports the kernel says are free, so the demo does not clash with another Consul on this machine.
	free, err := freePorts(4)
	if err != nil {
		return nil, "", err
	}
	if httpPort == 0 {
		httpPort = free[3]
	}
	config := map[string]any{
		"node_name":            consulNode,
		"bind_addr":            "127.0.0.1",
		"client_addr":          "127.0.0.1",
		"advertise_addr":       "127.0.0.1",
		"disable_update_check": true,
		"ports": map[string]any{
			"http": httpPort, "server": free[0], "serf_lan": free[1], "serf_wan": free[2],
			"dns": -1, "grpc": -1, "grpc_tls": -1, "https": -1,
		},
	}
	text, _ := json.MarshalIndent(config, "", "  ")
	configPath := filepath.Join(dir, "consul.json")
	if err := os.WriteFile(configPath, text, 0o600); err != nil {
		return nil, "", err
	}
	c, _, err := startChild("consul", filepath.Join(dir, "consul.log"), bin,
		[]string{"agent", "-dev", "-config-file=" + configPath}, env, nil)
	if err != nil {
		return nil, "", err
	}
	g.add(c)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	if err := waitConsul(c, addr); err != nil {
		return nil, "", err
	}
	return c, addr, nil
}

// waitConsul polls until the agent has a leader and has registered its own node (before that, service
// registrations fail).
func waitConsul(c *child, addr string) error {
	client, err := consulClient(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(ctx)
	tick := time.NewTicker(100 * time.Millisecond)
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
			return fmt.Errorf("consul not ready within %s: %v; the end of %s:\n%s", startTimeout, err, c.logPath, tail(c.logPath))
		case <-tick.C:
		}
	}
}

// consulClient talks to the demo's agent only, whatever CONSUL_HTTP_* the user's shell sets.
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
