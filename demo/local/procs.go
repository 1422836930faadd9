package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one process of the topology. Its stdout and stderr go to a log file in the run directory, so
// the terminal shows only the demo's own messages.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has exited and err is set
	err     error
}

// readyFunc inspects one output line; it returns a value and true once the line says the process is ready.
type readyFunc func(line string) (any, bool)

// startTimeout bounds how long a process may take to say it is ready.
const startTimeout = 60 * time.Second

// startChild starts bin and waits until ready accepts one of its output lines (if ready is nil, it does not
// wait). A process that exits or stays silent first is an error that quotes the end of its log.
func startChild(name, logPath, bin string, args, env []string, ready readyFunc) (*child, any, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	c := &child{name: name, logPath: logPath, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = env
	setSysProcAttr(c.cmd)
	pr, pw := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = pw, pw

	readyCh := make(chan any, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := ready == nil
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logf, line)
			if !found {
				if v, ok := ready(line); ok {
					found = true
					readyCh <- v
				}
			}
		}
		io.Copy(logf, pr) // a line longer than the buffer: keep draining so the child never blocks
		logf.Close()
	}()

	// The goroutine that starts the process stays on its OS thread until the process exits: on Linux the
	// child gets SIGKILL when that thread ends (Pdeathsig), so a killed demo leaves no process behind.
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
		return nil, nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	if ready == nil {
		return c, nil, nil
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case v := <-readyCh:
		return c, v, nil
	case <-c.done:
		return nil, nil, fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", name, c.err, logPath, tail(logPath))
	case <-timer.C:
		c.stop()
		return nil, nil, fmt.Errorf("%s was not ready within %s; the end of %s:\n%s", name, startTimeout, logPath, tail(logPath))
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (what docker compose stop sends), then SIGKILL if the process is still there after
// 10s, and waits for it.
func (c *child) stop() {
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

// prefixReady waits for a line containing prefix and returns the rest of the line after it (an address).
func prefixReady(prefix string) readyFunc {
	return func(line string) (any, bool) {
		_, rest, ok := strings.Cut(line, prefix)
		return strings.TrimSpace(rest), ok
	}
}

// group stops children in the reverse order of their start.
type group struct {
	mu       sync.Mutex
	children []*child
}

func (g *group) add(c *child) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.children = append(g.children, c)
}

func (g *group) stopAll() {
	g.mu.Lock()
	cs := append([]*child(nil), g.children...)
	g.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i].stop()
	}
}
