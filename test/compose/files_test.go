package compose

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// repo is the repository root, absolute: compose's loader resolves the file's relative paths against it.
var repo = func() string {
	_, file, _, _ := runtime.Caller(0)
	abs, _ := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	return abs
}()

// loadProject reads docker-compose.yml as `docker compose` does, with compose-spec's own loader: the file
// is validated against the Compose schema (an unknown or misspelt key is an error), anchors and merges are
// applied, and relative paths are resolved against the repository. The user's environment and any .env
// file are left out, so the test sees what every user gets.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repo, "docker-compose.yml")},
		cli.WithWorkingDirectory(repo), cli.WithEnv(nil), cli.WithDiscardEnvFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load as compose loads it: %v", err)
	}
	if len(p.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return p
}

// env is a service's environment variable, "" when unset.
func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestComposeFileLoads(t *testing.T) {
	p := loadProject(t)
	if p.Name != "dynup-demo" {
		t.Errorf("project name %q: the docs' container names (dynup-demo-…) assume dynup-demo", p.Name)
	}
}
