// Command compare is benchmark B6 (`make bench-compare`, opt-in, not part of CI): the seed's first solution
// and dynup side by side, on one Consul agent, in one run.
//
//	nginx side   Consul → consul-template renders nginx's upstream file → `nginx -s reload`;
//	             clients send HTTP requests through nginx on 127.0.0.1
//	dynup side   Consul → dynup (Consul mode) → xDS → gRPC-Go's proxyless xDS client
//	             (Envoy cannot be installed here; gRPC's xDS client is the other data plane dynup serves)
//
// Both sides route to the same instances of one Consul service, which serve HTTP and gRPC on one port and
// answer with their id. A change registers a new instance through the agent's API (as Registrator does) and,
// once both sides have served it, deregisters the oldest, which keeps serving for a grace time (a deploy
// draining) and is then stopped. For each side it measures the time from the return of the registration
// call to the first answer from the new instance, and counts the requests that failed while the changes ran.
//
// test/compare/run.sh installs what is missing and runs it; go run ./test/compare --help lists the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/dynup/dynup/test/localproc"
)

// service is the Consul service both sides route to.
const service = "bench"

type config struct {
	consulBin, ctBin, nginxBin, dynupBin, dir string
	changes, clients, live                    int
	interval, pace, grace, changeTimeout      time.Duration
	timeout                                   time.Duration
}

func main() { localproc.Main(run) }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := localproc.NewFlagSet("compare", stderr)
	fs.StringVar(&c.consulBin, "consul-bin", "consul", "Consul binary (bash test/consulagent/build-consul.sh prints one)")
	fs.StringVar(&c.ctBin, "consul-template-bin", "consul-template", "consul-template binary (bash test/compare/build-consul-template.sh prints one)")
	fs.StringVar(&c.nginxBin, "nginx-bin", "/usr/sbin/nginx", "nginx binary (Debian's package: apt-get install nginx)")
	fs.StringVar(&c.dynupBin, "dynup-bin", "", "dynup binary (go build ./cmd/dynup); required")
	fs.StringVar(&c.dir, "dir", "", "directory for configs, logs and state (default: a new temporary directory)")
	fs.IntVar(&c.changes, "changes", 100, "registration changes to make")
	fs.IntVar(&c.clients, "clients", 2, "clients per side, each sending one request every --interval")
	fs.IntVar(&c.live, "live", 2, "instances registered at once between changes")
	fs.DurationVar(&c.interval, "interval", time.Millisecond, "time between two requests of one client")
	fs.DurationVar(&c.pace, "pace", 500*time.Millisecond, "least time from one change to the next")
	fs.DurationVar(&c.grace, "grace", 2*time.Second, "how long a deregistered instance keeps serving before it stops (0: at once)")
	fs.DurationVar(&c.changeTimeout, "change-timeout", 10*time.Second, "how long a change waits for each side to serve the new instance before counting it as missed")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "bound on the whole run; what was measured by then is printed")
	if err := localproc.Parse(fs, args); err != nil {
		return c, err
	}
	switch {
	case c.dynupBin == "":
		return c, errors.New("--dynup-bin is required (test/compare/run.sh builds one)")
	case c.changes < 1 || c.clients < 1 || c.live < 1 || c.interval <= 0:
		return c, errors.New("--changes, --clients, --live and --interval must be positive")
	}
	for _, p := range []*string{&c.consulBin, &c.ctBin, &c.nginxBin, &c.dynupBin} {
		found, err := exec.LookPath(*p)
		if err != nil {
			return c, err
		}
		*p = found
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return localproc.ArgsStatus("compare", err, stderr)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	r, err := bench(ctx, c, stderr)
	if r != nil {
		printReport(stdout, c, r)
	}
	if err != nil {
		fmt.Fprintln(stderr, "compare:", err)
		return 1
	}
	return 0
}

// result is what one run measured, per side.
type result struct {
	dir     string
	sides   []*side
	reach   map[*side][]time.Duration // registration → first answer from the new instance, per change
	missed  map[*side]int             // changes the side did not serve within --change-timeout
	drain   map[*side][]time.Duration // deregistration → last answer from the old instance
	changes int                       // changes made
	took    time.Duration
}

func bench(ctx context.Context, c config, log io.Writer) (*result, error) {
	if c.dir == "" {
		d, err := os.MkdirTemp("", "dynup-compare-")
		if err != nil {
			return nil, err
		}
		c.dir = d
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	c.dir, _ = filepath.Abs(c.dir)
	fmt.Fprintf(log, "compare: configs and logs in %s\n", c.dir)
	env := localproc.EnvWithout(os.Environ(), "CONSUL_", "GRPC_XDS_BOOTSTRAP")
	var procs localproc.Group
	defer procs.StopAll()

	consulAddr, err := startConsul(&procs, c.dir, c.consulBin, env)
	if err != nil {
		return nil, err
	}
	client, err := localproc.ConsulClient(consulAddr)
	if err != nil {
		return nil, err
	}
	reg := registrar{agent: client.Agent()}
	var live []*backend
	defer func() {
		for _, b := range live {
			b.stop()
		}
	}()
	for range c.live {
		b, err := reg.add()
		if err != nil {
			return nil, err
		}
		live = append(live, b)
	}
	xdsAddr, err := startDynup(&procs, c.dir, c.dynupBin, consulAddr, env)
	if err != nil {
		return nil, err
	}
	nginxAddr, err := startNginx(&procs, c.dir, c.nginxBin, c.ctBin, consulAddr, service, env)
	if err != nil {
		return nil, err
	}
	cc, err := dialXDS(xdsAddr, service)
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	fmt.Fprintf(log, "compare: Consul %s, dynup xDS %s, nginx %s\n", consulAddr, xdsAddr, nginxAddr)

	// Any process of either side that exits ends the run: its numbers would mean nothing.
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	for _, p := range procs.Processes() {
		go func() {
			select {
			case <-p.Done():
				abort(fmt.Errorf("%s exited during the run (%v); the end of %s:\n%s", p.Name, p.Err(), p.LogPath, p.Tail()))
			case <-ctx.Done():
			}
		}()
	}

	r := &result{dir: c.dir, reach: map[*side][]time.Duration{}, missed: map[*side]int{}, drain: map[*side][]time.Duration{}}
	r.sides = []*side{
		newSide("nginx + consul-template", httpSender(nginxAddr, c.clients)),
		newSide("dynup + gRPC xDS client", grpcSender(cc)),
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	defer func() { stopLoad(); load.Wait() }()
	for _, s := range r.sides {
		s.run(loadCtx, c.clients, c.interval, &load)
	}

	// Warm up: both sides serve every initial instance before the first change.
	for _, b := range live {
		for _, s := range r.sides {
			if err := waitSeen(ctx, s, b.id, 30*time.Second); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	fmt.Fprintf(log, "compare: both sides serve %d instances; making %d changes\n", len(live), c.changes)

	// changes.log has every change's timestamps, to line up with the logs of consul-template, nginx and dynup.
	events, err := os.Create(filepath.Join(c.dir, "changes.log"))
	if err != nil {
		return nil, err
	}
	defer events.Close()
	var drained sync.WaitGroup
	var drainMu sync.Mutex
	began := time.Now()
	for _, s := range r.sides {
		s.counting.Store(true)
	}
	for i := 0; i < c.changes && ctx.Err() == nil; i++ {
		next := time.Now().Add(c.pace)
		nb, err := reg.add()
		if err != nil {
			abort(err)
			break
		}
		registered := time.Now()
		live = append(live, nb)
		fmt.Fprintf(events, "%s change %d: registered %s\n", registered.UTC().Format(time.RFC3339Nano), i+1, nb.id)
		for _, s := range r.sides {
			if waitSeen(ctx, s, nb.id, time.Until(registered.Add(c.changeTimeout))) != nil {
				if ctx.Err() != nil {
					break // the run ends (timeout, a process exited): not a miss of this side
				}
				r.missed[s]++
				fmt.Fprintf(events, "  %s: not served within %s\n", s.name, c.changeTimeout)
				continue
			}
			first, _ := s.firstAndLast(nb.id)
			r.reach[s] = append(r.reach[s], max(0, first.Sub(registered)))
			fmt.Fprintf(events, "  %s: first answer at %s (+%s)\n", s.name, first.UTC().Format(time.RFC3339Nano), first.Sub(registered))
		}
		r.changes++

		old := live[0]
		live = live[1:]
		if err := reg.remove(old); err != nil {
			abort(err)
			break
		}
		deregistered := time.Now()
		fmt.Fprintf(events, "%s change %d: deregistered %s\n", deregistered.UTC().Format(time.RFC3339Nano), i+1, old.id)
		drained.Add(1)
		go func() {
			defer drained.Done()
			select {
			case <-time.After(c.grace):
			case <-ctx.Done():
			}
			old.stop()
			drainMu.Lock()
			defer drainMu.Unlock()
			for _, s := range r.sides {
				if _, last := s.firstAndLast(old.id); !last.IsZero() {
					r.drain[s] = append(r.drain[s], max(0, last.Sub(deregistered)))
				}
			}
		}()
		if (i+1)%10 == 0 {
			fmt.Fprintf(log, "compare: %d/%d changes\n", i+1, c.changes)
		}
		select {
		case <-time.After(time.Until(next)):
		case <-ctx.Done():
		}
	}
	drained.Wait() // the last stopped instances are part of the run: failures they cause count
	for _, s := range r.sides {
		s.counting.Store(false)
	}
	r.took = time.Since(began)
	if err := context.Cause(ctx); err != nil {
		return r, fmt.Errorf("run cut short after %d of %d changes: %w", r.changes, c.changes, err)
	}
	return r, nil
}

// waitSeen waits until side s has been answered by instance id.
func waitSeen(ctx context.Context, s *side, id string, within time.Duration) error {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-s.seen(id):
		return nil
	case <-timer.C:
		return fmt.Errorf("%s: no answer from %s within %s", s.name, id, within)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
