package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/dynup/dynup/test/localproc"
)

// consulNode is the name of the demo's only Consul node.
const consulNode = "dynup-demo"

// startConsul runs a Consul agent in dev mode (one in-memory server, as in docker-compose.yml) on
// --consul-addr, which must be on loopback: Consul has no authentication here.
func startConsul(g *localproc.Group, dir, bin, httpAddr string, env []string) (*localproc.Process, string, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil || host != "127.0.0.1" {
		return nil, "", fmt.Errorf("--consul-addr %q: want 127.0.0.1:PORT (Consul has no authentication here)", httpAddr)
	}
	httpPort, err := strconv.Atoi(port)
	if err != nil {
		return nil, "", fmt.Errorf("--consul-addr %q: %v", httpAddr, err)
	}
	p, addr, err := localproc.StartConsul(dir, bin, consulNode, httpPort, env)
	if err != nil {
		return nil, "", err
	}
	g.Add(p)
	return p, addr, nil
}
