package localproc

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

// StartConsul runs a Consul agent in dev mode (one in-memory server, as in docker-compose.yml and as
// test/consulagent does for tests, which cannot serve here: it needs a testing.TB) named node, every
// listener on 127.0.0.1, its HTTP API on httpPort (0: a free port). Its config and log go to dir. It waits
// until the agent has a leader and its node is in the catalog (before that, registrations fail) and returns
// the agent and its HTTP address; an agent that is not ready is stopped.
func StartConsul(dir, bin, node string, httpPort int, env []string) (*Process, string, error) {
	// Only the HTTP API is of use, but serf and the server RPC port must be somewhere: ports the kernel says
	// are free, so the agent does not clash with another Consul on this machine.
	free, err := FreePorts(4)
	if err != nil {
		return nil, "", err
	}
	if httpPort == 0 {
		httpPort = free[3]
	}
	config := map[string]any{
		"node_name":            node,
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
	p, _, err := Start("consul", filepath.Join(dir, "consul.log"), bin,
		[]string{"agent", "-dev", "-config-file=" + configPath}, env, nil)
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	if err := waitConsul(p, addr, node); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, addr, nil
}

// waitConsul polls until the agent has a leader and has registered its own node.
func waitConsul(p *Process, addr, node string) error {
	client, err := ConsulClient(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
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
			var n *api.CatalogNode
			n, _, err = client.Catalog().Node(node, q)
			if err == nil && n == nil {
				err = errors.New("its node is not in the catalog yet")
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("consul exited (%v); the end of %s:\n%s", p.err, p.LogPath, p.Tail())
		case <-ctx.Done():
			return fmt.Errorf("consul not ready within %s: %v; the end of %s:\n%s", startTimeout, err, p.LogPath, p.Tail())
		case <-tick.C:
		}
	}
}

// ConsulClient talks to the agent at addr only, whatever CONSUL_HTTP_* the user's shell sets.
func ConsulClient(addr string) (*api.Client, error) {
	return api.NewClient(&api.Config{
		Address:    addr,
		Scheme:     "http",
		HttpClient: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second},
	})
}

// FreePorts returns n distinct loopback ports that were free for TCP and UDP (serf uses both) a moment ago.
func FreePorts(n int) ([]int, error) {
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
