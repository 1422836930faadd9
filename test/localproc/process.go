// Package localproc runs the child processes of dynup's local programs: demo/local (`make demo-local`, the
// demo's topology without Docker) and test/compare (`make bench-compare`, benchmark B6). Both start real
// binaries (Consul, dynup, nginx, …) on loopback, wait for a line of output that says each is ready, keep
// its output in a log file, stop everything in reverse order on Ctrl-C and leave nothing behind when they
// are killed. They did this with copies of the same code; this package is that code, once.
//
// Tests use test/consulagent instead, which ties an agent's life to a testing.TB.
package localproc

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

// Process is one child process. Its stdout and stderr go to a log file, so the terminal shows only the
// parent's own messages.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed once the process has exited and err is set
	err     error
}

// Ready inspects one output line; it returns a value and true once the line says the process is ready.
type Ready func(line string) (any, bool)

// startTimeout bounds how long a process may take to say it is ready. A variable for this package's tests.
var startTimeout = time.Minute

// Start starts bin, its output appended to logPath, and waits until ready accepts one of its output lines
// (if ready is nil, it does not wait); it returns ready's value. A process that exits or stays silent for a
// minute first is an error that quotes the end of its log; one that stays silent is stopped.
func Start(name, logPath, bin string, args, env []string, ready Ready) (*Process, any, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	p := &Process{Name: name, LogPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	setSysProcAttr(p.cmd)
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw

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

	// The goroutine that starts the process keeps its OS thread until the process exits: on Linux the child
	// gets SIGKILL when that thread ends (Pdeathsig), which must be when this program dies, not when the Go
	// scheduler retires an idle thread.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			pw.Close()
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, nil, fmt.Errorf("%s: starting %s: %w", name, bin, err)
	}
	if ready == nil {
		return p, nil, nil
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case v := <-readyCh:
		return p, v, nil
	case <-p.done:
		return nil, nil, fmt.Errorf("%s exited before it was ready (%v); the end of %s:\n%s", name, p.err, logPath, p.Tail())
	case <-timer.C:
		p.Stop()
		return nil, nil, fmt.Errorf("%s was not ready within %s; the end of %s:\n%s", name, startTimeout, logPath, p.Tail())
	}
}

// AfterPrefix is ready at a line containing prefix; its value is the rest of the line after it (an address).
func AfterPrefix(prefix string) Ready {
	return func(line string) (any, bool) {
		_, rest, ok := strings.Cut(line, prefix)
		return strings.TrimSpace(rest), ok
	}
}

// LineContaining is ready at a line containing s; its value is the whole line.
func LineContaining(s string) Ready {
	return func(line string) (any, bool) {
		return line, strings.Contains(line, s)
	}
}

func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited; Err and State are set by then.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is what waiting for the process returned (nil for exit status 0). Read it only after Done.
func (p *Process) Err() error { return p.err }

// State is how the process exited. Read it only after Done.
func (p *Process) State() *os.ProcessState { return p.cmd.ProcessState }

func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM (what docker compose stop sends; nginx and Consul take it as "stop now", dynup and
// consul-template as "shut down"), then SIGKILL if the process is still there after 10s, and waits for it.
// Then it kills what is left in the child's process group: nginx workers outlive a master that died, and
// keep its port.
func (p *Process) Stop() {
	defer killGroup(p.cmd.Process.Pid)
	if p.Exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Tail is the last lines of the process's log, for error messages.
func (p *Process) Tail() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
