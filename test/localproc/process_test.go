package localproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// childMode makes the test binary one of the children these tests start, instead of running the tests.
const childMode = "LOCALPROC_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		runChild(mode)
		return
	}
	os.Exit(m.Run())
}

func runChild(mode string) {
	switch mode {
	case "serve": // ready after a line of noise; runs until it is signalled
		fmt.Println("starting")
		fmt.Println("listening on 127.0.0.1:7")
		select {}
	case "fail":
		fmt.Println("boom")
		os.Exit(3)
	case "silent":
		select {}
	case "parent": // leaves a process in its process group that holds the FIFO in argv open
		grandchild := exec.Command(os.Args[0], os.Args[1:]...)
		grandchild.Env = append(os.Environ(), childMode+"=hold")
		if err := grandchild.Start(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("started")
		select {}
	case "hold":
		f, err := os.OpenFile(os.Getenv("LOCALPROC_TEST_FIFO"), os.O_WRONLY, 0)
		if err != nil {
			os.Exit(1)
		}
		defer f.Close()
		select {}
	}
	os.Exit(2)
}

// startSelf starts this test binary as a child in mode.
func startSelf(t *testing.T, mode string, ready Ready, env ...string) (*Process, any, error) {
	t.Helper()
	env = append(os.Environ(), append(env, childMode+"="+mode)...)
	return Start(mode, filepath.Join(t.TempDir(), mode+".log"), os.Args[0], []string{"-test.run=^$"}, env, ready)
}

func TestStartWaitsForTheReadyLine(t *testing.T) {
	p, v, err := startSelf(t, "serve", AfterPrefix("listening on "))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if v != "127.0.0.1:7" {
		t.Errorf("ready value %q, want the address after the prefix", v)
	}
	if p.Exited() {
		t.Fatal("exited before Stop")
	}
	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if p.State() == nil || p.Err() == nil {
		t.Errorf("state %v, err %v: want a process ended by SIGTERM", p.State(), p.Err())
	}
	if tail := p.Tail(); !strings.Contains(tail, "starting\nlistening on 127.0.0.1:7") {
		t.Errorf("log %q lacks the child's output", tail)
	}
}

func TestStartWithoutReadyDoesNotWait(t *testing.T) {
	p, v, err := startSelf(t, "silent", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if v != nil || p.PID() <= 0 {
		t.Errorf("value %v, pid %d", v, p.PID())
	}
}

func TestStartQuotesTheLogOfAChildThatExitsFirst(t *testing.T) {
	_, _, err := startSelf(t, "fail", LineContaining("never"))
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready (exit status 3)") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}

func TestStartGivesUpOnASilentChild(t *testing.T) {
	defer func(d time.Duration) { startTimeout = d }(startTimeout)
	startTimeout = 200 * time.Millisecond
	_, _, err := startSelf(t, "silent", LineContaining("never"))
	if err == nil || !strings.Contains(err.Error(), "silent was not ready within 200ms") {
		t.Errorf("err = %v", err)
	}
}

func TestStartOfAMissingBinary(t *testing.T) {
	_, _, err := Start("x", filepath.Join(t.TempDir(), "x.log"), "/nonexistent/x", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "x: starting /nonexistent/x") {
		t.Errorf("err = %v", err)
	}
}

func TestLineContainingIsTheWholeLine(t *testing.T) {
	line := `{"msg":"listening","xds":"127.0.0.1:1"}`
	if v, ok := LineContaining(`"msg":"listening"`)(line); !ok || v != line {
		t.Errorf("got %v %v", v, ok)
	}
	if _, ok := LineContaining(`"msg":"listening"`)(`{"msg":"other"}`); ok {
		t.Error("ready at a line without the text")
	}
}

func TestGroupStopsEveryProcess(t *testing.T) {
	var g Group
	for range 3 {
		p, _, err := startSelf(t, "serve", AfterPrefix("listening on "))
		if err != nil {
			g.StopAll()
			t.Fatal(err)
		}
		g.Add(p)
	}
	g.StopAll()
	for _, p := range g.Processes() {
		if !p.Exited() {
			t.Errorf("pid %d still running after StopAll", p.PID())
		}
	}
}

func TestEnvWithout(t *testing.T) {
	got := EnvWithout([]string{"PATH=/bin", "CONSUL_HTTP_TOKEN=x", "GRPC_XDS_BOOTSTRAP=/f", "GRPC_XDS_BOOTSTRAP_CONFIG={}", "HOME=/h"},
		"CONSUL_", "GRPC_XDS_BOOTSTRAP")
	if strings.Join(got, " ") != "PATH=/bin HOME=/h" {
		t.Errorf("got %v", got)
	}
}
