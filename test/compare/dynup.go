package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	"github.com/dynup/dynup/test/harness"
	"github.com/dynup/dynup/test/localproc"
)

// startDynup runs dynup in Consul mode on the benchmark's agent, its listeners on free loopback ports, and
// returns its xDS address once it serves (dynup serves xDS only after it has read the whole catalog).
func startDynup(procs *localproc.Group, dir, bin, consulAddr string, env []string) (string, error) {
	c, line, err := localproc.Start("dynup", filepath.Join(dir, "dynup.log"), bin, []string{
		"--consul-addr", consulAddr, "--admin-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0",
		"--http-listener-address", "127.0.0.1", "--data-dir", filepath.Join(dir, "dynup-data"), "--log-format", "json",
	}, env, localproc.LineContaining(`"msg":"listening"`))
	if err != nil {
		return "", err
	}
	procs.Add(c)
	var rec struct{ XDS string }
	if err := json.Unmarshal([]byte(line.(string)), &rec); err != nil || rec.XDS == "" {
		return "", fmt.Errorf("dynup's listening line has no xds address: %s", line)
	}
	return rec.XDS, nil
}

// dialXDS opens a channel to xds:///service through gRPC-Go's own xDS resolver and balancers, as a
// proxyless gRPC client of dynup does in production. Envoy cannot be installed here; this is the data plane
// dynup also serves (dynup knows a gRPC client by its user agent).
func dialXDS(xdsAddr, service string) (*grpc.ClientConn, error) {
	builder, err := xds.NewXDSResolverWithConfigForTesting(harness.Bootstrap(xdsAddr, harness.ClientNode{ID: "compare-grpc-client"}))
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("xds:///"+service, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
}
