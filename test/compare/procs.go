package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// child is one process of the comparison (Consul, dynup, nginx, consul-template). Its output goes to a log
// file in the run directory, so the terminal shows only the benchmark's own lines.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited and err is set
	err     error
}

// startChild starts bin and, if readyLine is not empty, waits until a line of its output contains it. A
// process that exits or stays silent first is an error that quotes the end of its log. It returns that
// line (dynup's carries its addresses).
func startChild(name, logPath, bin string, args, env []string, readyLine string, within time.Duration) (*child, string, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", err
	}
	c := &child{name: name, logPath: logPath, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	setSysProcAttr(c.cmd)
	pr, pw := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = pw, pw

	readyCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := readyLine == ""
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !found && strings.Contains(line, readyLine) {
				found = true
				readyCh <- line
			}
		}
		io.Copy(logf, pr) // a line longer than the buffer: keep draining so the child never blocks
		logf.Close()
	}()

	// The starting goroutine keeps its OS thread until the process exits: Pdeathsig fires when that thread
	// ends, which must be when this program dies, not when the Go scheduler retires an idle thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			pw.Close()
			started <- err
			return
		}
		started <- nil
		c.err = c.cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, "", fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	if readyLine == "" {
		return c, "", nil
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case line := <-readyCh:
		return c, line, nil
	case <-c.done:
		return nil, "", fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", name, c.err, logPath, tail(logPath))
	case <-timer.C:
		c.stop()
		return nil, "", fmt.Errorf("%s did not print %q within %s; the end of %s:\n%s", name, readyLine, within, logPath, tail(logPath))
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (nginx and Consul take it as "stop now", dynup and consul-template as "shut down"),
// then SIGKILL if the process is still there after 10s, and waits for it. Then it kills what is left in the
// child's process group: nginx workers outlive a master that died, and keep its port.
func (c *child) stop() {
	defer killGroup(c.cmd.Process.Pid)
	if c.exited() {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		c.cmd.Process.Kill()
		<-c.done
	}
}

// tail is the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// children stops processes in the reverse order of their start.
type children []*child

func (cs *children) add(c *child) { *cs = append(*cs, c) }

// stopAll has a pointer receiver so that `defer procs.stopAll()` stops the children added after the defer.
func (cs *children) stopAll() {
	for i := len(*cs) - 1; i >= 0; i-- {
		(*cs)[i].stop()
	}
}

// envWithout is the environment less variables starting with any prefix: CONSUL_HTTP_ADDR and friends
// would point dynup or consul-template at another agent than the benchmark's.
func envWithout(prefixes ...string) []string {
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
