// Command local runs the demo's topology as local processes, for machines without Docker (`make
// demo-local`): the same parts as docker-compose.yml, with a stand-in where a part needs Docker or Envoy.
//
//	docker-compose.yml            here
//	consul (dev mode)             consul agent -dev, on 127.0.0.1
//	registrator                   this program: registers each backend through Consul's HTTP API once it
//	                              listens, deregisters it when its process exits
//	dynup                         dynup --consul-addr …
//	envoy (port 10000)            demo/xdsclient: a proxyless gRPC-Go xDS client of dynup behind an HTTP front
//	three backends                demo/backend processes: imgprocess-1, imgprocess-2, imageinfo-1
//
// Everything listens on 127.0.0.1. Logs, state and the gRPC bootstrap go to --dir. Ctrl-C stops it all.
// docs/demo.md walks through the demo; test/demolocal runs this program and checks every step.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/dynup/dynup/test/localproc"
)

// backends are the demo's servers, as in docker-compose.yml: two for imgprocess, one for imageinfo.
var backends = []struct{ name, service string }{
	{"imgprocess-1", "imgprocess"},
	{"imgprocess-2", "imgprocess"},
	{"imageinfo-1", "imageinfo"},
}

// The gRPC client's identity; the compose demo's Envoy is in the same zone (envoy/demo-bootstrap.yaml).
const (
	clientNodeID = "demo-xdsclient"
	clientZone   = "zone-a"
)

type config struct {
	consulBin, dynupBin, backendBin, clientBin string
	consulAddr, adminAddr, xdsAddr, listenAddr string
	dir                                        string
	readyJSON                                  bool
}

func main() { localproc.Main(run) }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := localproc.NewFlagSet("demo-local", stderr)
	fs.StringVar(&c.consulBin, "consul-bin", os.Getenv("DYNUP_CONSUL_BIN"), "Consul binary (default $DYNUP_CONSUL_BIN, else consul on PATH); `make demo-local` builds one")
	fs.StringVar(&c.dynupBin, "dynup-bin", "", "dynup binary (default: go build ./cmd/dynup into --dir)")
	fs.StringVar(&c.backendBin, "backend-bin", "", "demo backend binary (default: go build ./demo/backend into --dir)")
	fs.StringVar(&c.clientBin, "xdsclient-bin", "", "demo xDS client binary (default: go build ./demo/xdsclient into --dir)")
	fs.StringVar(&c.consulAddr, "consul-addr", "127.0.0.1:8500", "Consul's HTTP API and UI (port 0: any free port)")
	fs.StringVar(&c.adminAddr, "admin-addr", "127.0.0.1:1995", "dynup's admin API")
	fs.StringVar(&c.xdsAddr, "xds-addr", "127.0.0.1:18000", "dynup's xDS server")
	fs.StringVar(&c.listenAddr, "listen", "127.0.0.1:10000", "the xDS client's HTTP front, where Envoy listens in the compose demo")
	fs.StringVar(&c.dir, "dir", "", "directory for logs, dynup's data, the gRPC bootstrap and binaries (default: a new temporary directory)")
	fs.BoolVar(&c.readyJSON, "ready-json", false, "once ready, print one JSON line with every address and pid first (for tests)")
	return c, localproc.Parse(fs, args)
}

// ready is what the topology looks like once it serves; --ready-json prints it.
type ready struct {
	Dir       string         `json:"dir"`
	Consul    string         `json:"consul"`
	Admin     string         `json:"admin"`
	XDS       string         `json:"xds"`
	HTTP      string         `json:"http"`
	PIDs      map[string]int `json:"pids"`
	Backends  []*backend     `json:"backends"`
	Bootstrap string         `json:"grpc_bootstrap"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return localproc.ArgsStatus("demo-local", err, stderr)
	}
	g := &localproc.Group{}
	stopping := make(chan struct{})
	defer func() {
		close(stopping)
		g.StopAll()
	}()
	r, essential, err := start(c, g, stderr, stopping)
	if err != nil {
		fmt.Fprintln(stderr, "demo-local:", err)
		return 1
	}
	if c.readyJSON {
		line, _ := json.Marshal(r)
		fmt.Fprintf(stdout, "%s\n", line)
	}
	printSummary(stdout, r)

	// Run until Ctrl-C, or until a part the demo cannot do without stops (a backend may stop: that is a step
	// of the demo).
	exited := make(chan *localproc.Process, len(essential))
	for _, p := range essential {
		go func() { <-p.Done(); exited <- p }()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "demo-local: stopping")
		return 0
	case p := <-exited:
		fmt.Fprintf(stderr, "demo-local: %s exited (%v); stopping everything. The end of %s:\n%s\n", p.Name, p.Err(), p.LogPath, p.Tail())
		return 1
	}
}

// start builds what is missing and starts Consul, the backends (registered in Consul), dynup and the xDS
// client, in that order. It returns the parts whose exit ends the demo.
func start(c config, g *localproc.Group, stderr io.Writer, stopping <-chan struct{}) (*ready, []*localproc.Process, error) {
	if c.dir == "" {
		d, err := os.MkdirTemp("", "dynup-demo-local-")
		if err != nil {
			return nil, nil, err
		}
		c.dir = d
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := findBinaries(&c, stderr); err != nil {
		return nil, nil, err
	}
	env := localproc.EnvWithout(os.Environ(), "CONSUL_", "GRPC_XDS_BOOTSTRAP")
	r := &ready{Dir: c.dir, HTTP: c.listenAddr, PIDs: map[string]int{}}

	consul, consulAddr, err := startConsul(g, c.dir, c.consulBin, c.consulAddr, env)
	if err != nil {
		return nil, nil, err
	}
	r.Consul, r.PIDs["consul"] = consulAddr, consul.PID()
	client, err := localproc.ConsulClient(consulAddr)
	if err != nil {
		return nil, nil, err
	}
	reg := &registrator{agent: client.Agent(), out: stderr}
	for _, spec := range backends {
		b := &backend{Name: spec.name, Service: spec.service}
		p, addr, err := localproc.Start(b.Name, filepath.Join(c.dir, b.Name+".log"), c.backendBin,
			[]string{"--addr", "127.0.0.1:0", "--name", b.Name}, env, localproc.AfterPrefix("listening on "))
		if err != nil {
			return nil, nil, err
		}
		g.Add(p)
		b.proc, b.Addr, b.PID = p, addr.(string), p.PID()
		if err := reg.register(b); err != nil {
			return nil, nil, fmt.Errorf("registering %s in Consul: %w", b.Name, err)
		}
		go reg.deregisterOnExit(b, stopping)
		if err := os.WriteFile(filepath.Join(c.dir, b.Name+".pid"), fmt.Appendf(nil, "%d\n", b.PID), 0o600); err != nil {
			return nil, nil, err
		}
		r.Backends = append(r.Backends, b)
	}

	dynup, addrs, err := localproc.Start("dynup", filepath.Join(c.dir, "dynup.log"), c.dynupBin, []string{
		"--admin-addr", c.adminAddr, "--xds-addr", c.xdsAddr, "--consul-addr", consulAddr,
		"--data-dir", filepath.Join(c.dir, "dynup-data"), "--log-format", "json",
	}, env, dynupReady)
	if err != nil {
		return nil, nil, err
	}
	g.Add(dynup)
	r.Admin, r.XDS, r.PIDs["dynup"] = addrs.([2]string)[0], addrs.([2]string)[1], dynup.PID()

	r.Bootstrap = filepath.Join(c.dir, "grpc-bootstrap.json")
	if err := os.WriteFile(r.Bootstrap, grpcBootstrap(r.XDS), 0o600); err != nil {
		return nil, nil, err
	}
	xdsclient, httpAddr, err := localproc.Start("xdsclient", filepath.Join(c.dir, "xdsclient.log"), c.clientBin,
		[]string{"--listen", c.listenAddr}, append(env, "GRPC_XDS_BOOTSTRAP="+r.Bootstrap), localproc.AfterPrefix("listening on "))
	if err != nil {
		return nil, nil, err
	}
	g.Add(xdsclient)
	r.HTTP, r.PIDs["xdsclient"] = httpAddr.(string), xdsclient.PID()
	return r, []*localproc.Process{consul, dynup, xdsclient}, nil
}

// dynupReady reads dynup's JSON log line {"msg":"listening","admin":…,"xds":…}.
func dynupReady(line string) (any, bool) {
	var rec struct{ Msg, Admin, XDS string }
	if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "listening" || rec.Admin == "" || rec.XDS == "" {
		return nil, false
	}
	return [2]string{rec.Admin, rec.XDS}, true
}

// grpcBootstrap is the gRPC xDS bootstrap of the client: dynup as its xDS server, its node's id and zone,
// and metadata dynup.kind=grpc (dynup would also tell from gRPC's user agent).
func grpcBootstrap(xdsAddr string) []byte {
	b, _ := json.MarshalIndent(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
		"node": map[string]any{
			"id": clientNodeID, "cluster": "demo", "locality": map[string]any{"zone": clientZone},
			"metadata": map[string]any{"dynup.kind": "grpc"},
		},
	}, "", "  ")
	return b
}

// findBinaries fills in the Consul binary from PATH and builds the Go binaries not given.
func findBinaries(c *config, stderr io.Writer) error {
	if c.consulBin == "" {
		p, err := exec.LookPath("consul")
		if err != nil {
			return errors.New("no Consul binary: run `make demo-local` (it builds one), or pass --consul-bin or set DYNUP_CONSUL_BIN")
		}
		c.consulBin = p
	}
	for _, b := range []struct {
		path *string
		pkg  string
	}{
		{&c.dynupBin, "github.com/dynup/dynup/cmd/dynup"},
		{&c.backendBin, "github.com/dynup/dynup/demo/backend"},
		{&c.clientBin, "github.com/dynup/dynup/demo/xdsclient"},
	} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(c.dir, "bin", filepath.Base(b.pkg))
		fmt.Fprintf(stderr, "demo-local: go build %s\n", b.pkg)
		cmd := exec.Command("go", "build", "-o", *b.path, b.pkg)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s (run this from the dynup checkout): %w", b.pkg, err)
		}
	}
	return nil
}

func printSummary(w io.Writer, r *ready) {
	fmt.Fprintf(w, `
dynup's demo runs as local processes (logs and state in %s):
  Consul       http://%s/ui
  dynup        admin API http://%s, xDS %s
  xdsclient    http://%s  (a gRPC-Go xDS client of dynup, standing in for Envoy)
`, r.Dir, r.Consul, r.Admin, r.XDS, r.HTTP)
	for _, b := range r.Backends {
		fmt.Fprintf(w, "  %-12s %s, service %s, pid %d\n", b.Name, b.Addr, b.Service, b.PID)
	}
	var stopLine string
	for _, b := range r.Backends {
		if b.Name == "imgprocess-2" {
			stopLine = fmt.Sprintf("  kill %d    # stop imgprocess-2, as `docker compose stop imgprocess-2` does\n", b.PID)
		}
	}
	fmt.Fprintf(w, `
Try it (docs/demo.md walks through every step):
  curl -H "Host: imgprocess" http://%s
  curl http://%s/detail
%sCtrl-C stops everything.
`, r.HTTP, r.Admin, stopLine)
}
