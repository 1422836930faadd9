package compose

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// pinned accepts image:tag (tag not "latest") or image@sha256:…; an image without either is latest.
func pinned(image string) error {
	if strings.Contains(image, "@sha256:") {
		return nil
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon < slash+1 { // no tag; a colon before the last slash is a registry port
		return errors.New("no tag: that is :latest")
	}
	if tag := image[colon+1:]; tag == "latest" || tag == "" {
		return fmt.Errorf("tag %q is not a version", tag)
	}
	return nil
}

func TestPinnedAcceptsVersionsOnly(t *testing.T) {
	for image, ok := range map[string]bool{
		"envoyproxy/envoy:v1.39.4": true, "golang:1.26.8-bookworm": true, "reg.example:5000/x:1.2": true,
		"x@sha256:0123": true, "envoyproxy/envoy": false, "envoyproxy/envoy:latest": false, "reg.example:5000/x": false,
	} {
		if err := pinned(image); (err == nil) != ok {
			t.Errorf("pinned(%q) = %v", image, err)
		}
	}
}

func TestImagesArePinnedOrBuilt(t *testing.T) {
	for name, s := range loadProject(t).Services {
		switch {
		case s.Image != "" && s.Build != nil:
			t.Errorf("%s: both image and build; the image name would be a local tag that looks pulled", name)
		case s.Build != nil:
		case s.Image == "":
			t.Errorf("%s: neither image nor build", name)
		default:
			if err := pinned(s.Image); err != nil {
				t.Errorf("%s: image %s: %v", name, s.Image, err)
			}
		}
	}
}

// Every build is the project's Dockerfile, and names a stage it has.
func TestBuildsUseTheProjectDockerfile(t *testing.T) {
	stages := projectDockerfile(t)
	built := 0
	for name, s := range loadProject(t).Services {
		if s.Build == nil {
			continue
		}
		built++
		dockerfile := s.Build.Dockerfile
		if dockerfile == "" {
			dockerfile = "Dockerfile"
		}
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(s.Build.Context, dockerfile)
		}
		if dockerfile != filepath.Join(repo, "Dockerfile") {
			t.Errorf("%s: builds %s, not the project's Dockerfile", name, dockerfile)
			continue
		}
		if s.Build.Target == "" {
			continue // the last stage
		}
		if _, ok := stageNamed(stages, s.Build.Target); !ok {
			t.Errorf("%s: the Dockerfile has no stage %q", name, s.Build.Target)
		}
	}
	if built == 0 {
		t.Error("nothing is built: dynup and the backends come from the project's Dockerfile")
	}
}

// hostPaths are the absolute host paths a service may mount: Registrator reads Docker's events.
var hostPaths = map[string]bool{"/var/run/docker.sock": true}

// Bind mounts are files of the repository, read-only, or Docker's socket; volumes are declared.
func TestMountsExist(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case "bind":
				if hostPaths[v.Source] {
					continue
				}
				rel, err := filepath.Rel(repo, v.Source)
				if err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s: mounts host path %s, outside the repository", name, v.Source)
					continue
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: mounts %s, which is not in the repository: %v", name, rel, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s: %s is mounted writable; the container must not change the checkout", name, rel)
				}
			case "volume":
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: named volume %s is not declared under volumes:", name, v.Source)
				}
			default:
				t.Errorf("%s: a %s mount; the demo needs binds and volumes only", name, v.Type)
			}
		}
	}
}

// Nothing in the demo has authentication, so nothing may be published beyond the host's loopback.
func TestPortsArePublishedOnLoopbackOnly(t *testing.T) {
	published := 0
	for name, s := range loadProject(t).Services {
		for _, port := range s.Ports {
			published++
			if port.HostIP != "127.0.0.1" || port.Published == "" {
				t.Errorf("%s: port %d published on %q:%q; want 127.0.0.1:HOST:CONTAINER", name, port.Target, port.HostIP, port.Published)
			}
		}
	}
	if published == 0 {
		t.Error("no published ports: the demo's curl commands need Envoy's and dynup's")
	}
}

func TestDependenciesAreServices(t *testing.T) {
	p := loadProject(t)
	for name, s := range p.Services {
		for d := range s.DependsOn {
			if _, ok := p.Services[d]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, d)
			}
		}
	}
}

// The demo's services: two imgprocess backends and one imageinfo, registered by Registrator under
// SERVICE_NAME on an exposed port, and nothing else registered.
func TestBackendsRegisterAsTheDemoSays(t *testing.T) {
	p := loadProject(t)
	got := map[string]int{}
	for name, s := range p.Services {
		svc := env(s, "SERVICE_NAME")
		if svc == "" {
			svc = s.Labels["SERVICE_NAME"]
		}
		if svc == "" {
			if name != "registrator" && s.Labels["SERVICE_IGNORE"] == "" && env(s, "SERVICE_IGNORE") == "" {
				t.Errorf("%s: neither SERVICE_NAME nor SERVICE_IGNORE: Registrator would register its exposed ports as an upstream", name)
			}
			continue
		}
		got[svc]++
		// Registrator -internal registers exposed ports; with two, it would register two services.
		if len(s.Expose) != 1 {
			t.Errorf("%s: exposes %v; Registrator (-internal) needs exactly one port to register as %s", name, s.Expose, svc)
		}
		if env(s, "BACKEND_NAME") != name {
			t.Errorf("%s answers as %q; the demo's output shows the service name", name, env(s, "BACKEND_NAME"))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]int{"imageinfo": 1, "imgprocess": 2}) {
		t.Errorf("registered services %v, want imgprocess x2 and imageinfo x1", got)
	}
	reg, ok := p.Services["registrator"]
	if !ok {
		t.Fatal("no registrator service")
	}
	for _, arg := range []string{"-internal", "consul://consul:8500", "-cleanup"} {
		if !slices.Contains(reg.Command, arg) {
			t.Errorf("registrator command %q: want %s", reg.Command, arg)
		}
	}
	if _, ok := p.Services["consul"]; !ok {
		t.Error("no consul service")
	}
}
