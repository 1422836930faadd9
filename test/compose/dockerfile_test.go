package compose

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stage is one FROM … section of a Dockerfile, with its instructions (continuation lines joined).
type stage struct {
	Name, Image string
	Lines       []instruction
}

type instruction struct{ Op, Args string }

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	logical := ""
	for _, line := range strings.Split(string(text), "\n") {
		trimmed := strings.TrimSpace(line)
		if logical == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			logical += cont + " "
			continue
		}
		logical += trimmed
		op, args, _ := strings.Cut(logical, " ")
		logical = ""
		in := instruction{strings.ToUpper(op), strings.TrimSpace(args)}
		if in.Op == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{Image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %s before FROM", path, in.Op)
		}
		stages[len(stages)-1].Lines = append(stages[len(stages)-1].Lines, in)
	}
	if len(stages) == 0 {
		t.Fatalf("%s has no FROM", path)
	}
	return stages
}

func (s stage) all(op string) []string {
	var out []string
	for _, in := range s.Lines {
		if in.Op == op {
			out = append(out, in.Args)
		}
	}
	return out
}

// execForm decodes CMD/ENTRYPOINT's JSON array form; the shell form would run under a shell distroless lacks.
func execForm(t *testing.T, args string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Fatalf("%q is not the exec (JSON array) form: %v", args, err)
	}
	return out
}

func stageNamed(stages []stage, name string) (stage, bool) {
	for _, s := range stages {
		if s.Name == name {
			return s, true
		}
	}
	return stage{}, false
}

func projectDockerfile(t *testing.T) []stage {
	return parseDockerfile(t, filepath.Join(repo, "Dockerfile"))
}

func TestDockerfileBaseImagesArePinned(t *testing.T) {
	stages := projectDockerfile(t)
	earlier := map[string]bool{}
	for _, s := range stages {
		if !earlier[s.Image] {
			if err := pinned(s.Image); err != nil {
				t.Errorf("FROM %s: %v", s.Image, err)
			}
		}
		earlier[s.Name] = true
	}
}

// The golang image runs with GOTOOLCHAIN=local, so an image older than go.mod's go line cannot build.
func TestBuildImageIsAtLeastGoModVersion(t *testing.T) {
	m := regexp.MustCompile(`(?m)^go (\d+(?:\.\d+)*)\s*$`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	found := false
	for _, s := range projectDockerfile(t) {
		image, tag, _ := strings.Cut(s.Image, ":")
		if image != "golang" {
			continue
		}
		found = true
		v, _, _ := strings.Cut(tag, "-")
		if compareVersions(v, m[1]) < 0 {
			t.Errorf("FROM %s: Go %s is older than go.mod's go %s", s.Image, v, m[1])
		}
	}
	if !found {
		t.Error("no golang build stage")
	}
}

func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// Every stage compose runs starts a binary the stage copied in, as a user other than root.
func TestRunnableStagesAreNonRootAndComplete(t *testing.T) {
	stages := projectDockerfile(t)
	runnable := []string{stages[len(stages)-1].Name} // `docker build .` builds the last stage
	for _, s := range loadProject(t).Services {
		if s.Build != nil && s.Build.Target != "" {
			runnable = append(runnable, s.Build.Target)
		}
	}
	for _, name := range runnable {
		s, ok := stageNamed(stages, name)
		if !ok {
			t.Errorf("no stage %q", name)
			continue
		}
		users := s.all("USER")
		if len(users) == 0 {
			t.Errorf("stage %s: no USER, so it runs as root", name)
		} else if u, _, _ := strings.Cut(users[len(users)-1], ":"); u == "root" || u == "0" {
			t.Errorf("stage %s: USER %s", name, users[len(users)-1])
		}
		eps := s.all("ENTRYPOINT")
		if len(eps) != 1 {
			t.Errorf("stage %s: %d ENTRYPOINTs, want 1", name, len(eps))
			continue
		}
		bin := execForm(t, eps[0])[0]
		copied := false
		for _, c := range s.all("COPY") {
			f := strings.Fields(c)
			copied = copied || f[len(f)-1] == bin
		}
		if !copied {
			t.Errorf("stage %s: ENTRYPOINT %s is not copied into the stage", name, bin)
		}
	}
}

// goBuilds are the `go build` commands of the Dockerfile's RUN lines, each with its environment (ENV lines
// before it), its flags without -o, and the package it builds.
type goBuild struct {
	Env     []string
	Flags   []string
	Package string
}

func dockerGoBuilds(t *testing.T) []goBuild {
	var out []goBuild
	for _, s := range projectDockerfile(t) {
		var env []string
		for _, in := range s.Lines {
			switch {
			case in.Op == "ENV":
				env = append(env, strings.Fields(in.Args)...)
			case in.Op == "RUN" && strings.HasPrefix(in.Args, "go build "):
				out = append(out, parseGoBuild(t, env, in.Args))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("the Dockerfile runs no go build")
	}
	return out
}

func parseGoBuild(t *testing.T, env []string, line string) goBuild {
	t.Helper()
	f := strings.Fields(strings.TrimPrefix(line, "go build "))
	b := goBuild{Env: env, Package: f[len(f)-1]}
	for i := 0; i < len(f)-1; i++ {
		if f[i] == "-o" {
			i++ // the output path differs between the image and a checkout
			continue
		}
		b.Flags = append(b.Flags, f[i])
	}
	return b
}

func TestBuiltPackagesExist(t *testing.T) {
	for _, b := range dockerGoBuilds(t) {
		dir := filepath.Join(repo, filepath.FromSlash(b.Package))
		if m, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(m) == 0 {
			t.Errorf("go build %s: no Go files in %s", b.Package, dir)
		}
	}
}

// docs/demo.md tells users how to build the binaries without Docker, and the README how to build dynup:
// the same environment, flags and packages as the image's `go build` steps. The README also runs the
// package the image builds.
func TestDocsGoBuildsMatchDockerfile(t *testing.T) {
	builds := dockerGoBuilds(t)
	readme := readmeDemoSection(t)
	for _, doc := range []struct{ name, text string }{
		{"docs/demo.md", readRepoFile(t, "docs/demo.md")},
		{"README.md's Demo section", readme},
	} {
		var docBuilds []goBuild
		for _, line := range strings.Split(doc.text, "\n") {
			envPart, cmd, ok := strings.Cut(strings.TrimSpace(line), "go build ")
			if ok {
				cmd, _, _ = strings.Cut(cmd, " #") // a shell comment after the command
				docBuilds = append(docBuilds, parseGoBuild(t, strings.Fields(envPart), cmd))
			}
		}
		for _, b := range builds {
			if doc.name != "docs/demo.md" && b.Package != "./cmd/dynup" {
				continue // the README builds dynup only
			}
			if !slices.ContainsFunc(docBuilds, func(d goBuild) bool {
				return d.Package == b.Package && slices.Equal(d.Flags, b.Flags) && slices.Equal(d.Env, b.Env)
			}) {
				t.Errorf("%s has no `%s go build %s -o … %s` line like the Dockerfile's (it has %+v)",
					doc.name, strings.Join(b.Env, " "), strings.Join(b.Flags, " "), b.Package, docBuilds)
			}
		}
	}
	if !strings.Contains(readRepoFile(t, "README.md"), "go run ./cmd/dynup") {
		t.Error("README.md does not run ./cmd/dynup, the package the image builds")
	}
}

// The README's and docs/demo.md's `docker build` commands build stages the Dockerfile has, together every
// stage docker-compose.yml runs; a command without --target builds the last stage, which must be dynup.
func TestDocsDockerBuildsMatchDockerfile(t *testing.T) {
	stages := projectDockerfile(t)
	if last := stages[len(stages)-1].Name; last != "dynup" {
		t.Fatalf("the Dockerfile's last stage is %q: `docker build .` must build dynup", last)
	}
	want := map[string]bool{"dynup": true}
	for _, s := range loadProject(t).Services {
		if s.Build != nil {
			want[cmp.Or(s.Build.Target, "dynup")] = true
		}
	}
	for _, doc := range []struct{ name, text string }{
		{"README.md's Demo section", readmeDemoSection(t)},
		{"docs/demo.md", readRepoFile(t, "docs/demo.md")},
	} {
		built := map[string]bool{}
		for _, line := range strings.Split(doc.text, "\n") {
			_, cmd, ok := strings.Cut(strings.TrimSpace(line), "docker build ")
			if !ok {
				continue
			}
			cmd, _, _ = strings.Cut(cmd, " #")
			f := strings.Fields(cmd)
			target := stages[len(stages)-1].Name
			for i, a := range f {
				if v, ok := strings.CutPrefix(a, "--target="); ok {
					target = v
				} else if a == "--target" && i+1 < len(f) {
					target = f[i+1]
				}
			}
			if len(f) == 0 || f[len(f)-1] != "." {
				t.Errorf("%s: `docker build %s`: the build context must be the repository (.), as compose's is", doc.name, cmd)
			}
			if _, ok := stageNamed(stages, target); !ok {
				t.Errorf("%s: `docker build %s` builds stage %q, which the Dockerfile does not have", doc.name, cmd, target)
			}
			built[target] = true
		}
		for stage := range want {
			if !built[stage] {
				t.Errorf("%s has no `docker build` for stage %q, which docker-compose.yml runs", doc.name, stage)
			}
		}
	}
}

// readmeDemoSection is README.md's "## Demo" section, up to the next section.
func readmeDemoSection(t *testing.T) string {
	t.Helper()
	readme := readRepoFile(t, "README.md")
	_, rest, ok := strings.Cut(readme, "\n## Demo\n")
	if !ok {
		t.Fatal("README.md has no \"## Demo\" section")
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	if !strings.Contains(rest, "docs/demo.md") {
		t.Error("README.md's Demo section does not link docs/demo.md")
	}
	return rest
}

// Local state and history stay out of the build context, hence out of images.
func TestDockerignoreKeepsStateOut(t *testing.T) {
	lines := map[string]bool{}
	for _, l := range strings.Split(readRepoFile(t, ".dockerignore"), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, want := range []string{".git", "data"} {
		if !lines[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}
