package compose

import (
	"cmp"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dynup/dynup/envoy/bootstrap"
)

// dynupFlags are the flags cmd/dynup defines, read from its source (a main package cannot be imported),
// with the default each flag's definition gives.
func dynupFlags(t *testing.T) map[string]string {
	t.Helper()
	def := regexp.MustCompile(`fs\.\w+\((?:&[^,]+,\s*)?"([a-z][a-z0-9-]*)",\s*([^,]+),`)
	files, _ := filepath.Glob(filepath.Join(repo, "cmd", "dynup", "*.go"))
	flags := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range def.FindAllStringSubmatch(string(text), -1) {
			flags[m[1]] = strings.Trim(strings.TrimSpace(m[2]), `"`)
		}
	}
	if flags["xds-addr"] == "" || flags["admin-addr"] == "" {
		t.Fatalf("found no dynup flag definitions in cmd/dynup (parsed %v)", flags)
	}
	return flags
}

// commandFlags reads --name=value and --name value arguments.
func commandFlags(t *testing.T, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		name, ok := strings.CutPrefix(args[i], "--")
		if !ok {
			t.Fatalf("argument %q: the tests expect --flag=value or --flag value", args[i])
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			out[n] = v
		} else if i+1 < len(args) {
			out[name] = args[i+1]
			i++
		}
	}
	return out
}

// Compose's and the Dockerfile's dynup arguments must be flags dynup has: an unknown one stops it at start.
func TestDynupArgumentsAreItsFlags(t *testing.T) {
	known := dynupFlags(t)
	dynupStage, _ := stageNamed(projectDockerfile(t), "dynup")
	cmds := dynupStage.all("CMD")
	if len(cmds) != 1 {
		t.Fatalf("dynup stage: %d CMDs, want 1", len(cmds))
	}
	dynup := loadProject(t).Services["dynup"]
	for where, args := range map[string][]string{
		"docker-compose.yml": dynup.Command,
		"Dockerfile CMD":     execForm(t, cmds[0]),
	} {
		for name := range commandFlags(t, args) {
			if _, ok := known[name]; !ok {
				t.Errorf("%s passes --%s, which dynup does not define", where, name)
			}
		}
	}
	if got := commandFlags(t, dynup.Command)["consul-addr"]; got != "consul:8500" {
		t.Errorf("dynup --consul-addr %q, want consul:8500: the demo's upstreams come from Consul", got)
	}
}

// The Envoy mounts a checked-in, valid bootstrap whose xDS cluster is the dynup service on its xDS port,
// and publishes the port of the listener dynup gives it.
func TestEnvoyBootstrapPointsAtDynup(t *testing.T) {
	p := loadProject(t)
	envoy, ok := p.Services["envoy"]
	if !ok {
		t.Fatal("no envoy service")
	}
	config := "/etc/envoy/envoy.yaml" // the envoy image's default -c
	if i := slices.Index(envoy.Command, "-c"); i >= 0 && i+1 < len(envoy.Command) {
		config = envoy.Command[i+1]
	}
	var src string
	for _, v := range envoy.Volumes {
		if v.Target == config {
			src = v.Source
		}
	}
	if src == "" {
		t.Fatalf("envoy runs -c %s but mounts nothing there (volumes %v)", config, envoy.Volumes)
	}
	if filepath.Dir(src) != filepath.Join(repo, "envoy") {
		t.Errorf("envoy's bootstrap %s is not one of the generated files in envoy/", src)
	}
	text, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("envoy's bootstrap: %v", err)
	}
	b, err := bootstrap.Parse(text)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	if err := bootstrap.Check(b); err != nil {
		t.Fatalf("%s: %v", src, err)
	}

	dynupArgs := commandFlags(t, p.Services["dynup"].Command)
	flags := dynupFlags(t)
	xdsAddr := cmp.Or(dynupArgs["xds-addr"], flags["xds-addr"])
	_, xdsPort, _ := net.SplitHostPort(xdsAddr)
	ep := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if ep.GetAddress() != "dynup" || strconv.Itoa(int(ep.GetPortValue())) != xdsPort {
		t.Errorf("%s connects to %s:%d; dynup is the service \"dynup\" with --xds-addr %s", src, ep.GetAddress(), ep.GetPortValue(), xdsAddr)
	}
	if _, ok := p.Services[ep.GetAddress()]; !ok {
		t.Errorf("%s connects to %q, which is not a compose service", src, ep.GetAddress())
	}

	listenerPort := cmp.Or(dynupArgs["http-listener-port"], flags["http-listener-port"])
	published := false
	for _, port := range envoy.Ports {
		published = published || strconv.Itoa(int(port.Target)) == listenerPort
	}
	if !published {
		t.Errorf("envoy publishes %v, not dynup's listener port %s", envoy.Ports, listenerPort)
	}
}
