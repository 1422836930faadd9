package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynup/dynup/registry"
)

type upstreamSeed = registry.Upstream

// seedUpstreams makes the upstreams dynup starts with: svc-00000… with servers 10.x.y.z:8080 spread over
// the zones.
func seedUpstreams(cfg config) []upstreamSeed {
	ups := make([]upstreamSeed, cfg.upstreams)
	for i := range ups {
		u := upstreamSeed{Name: fmt.Sprintf("svc-%05d", i)}
		for j := 0; j < cfg.servers; j++ {
			s := registry.Server{Host: fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j%250+1), Port: 8080 + j/250}
			if len(cfg.zones) > 0 {
				s.Zone = cfg.zones[j%len(cfg.zones)]
			}
			u.Servers = append(u.Servers, s)
		}
		ups[i] = u
	}
	return ups
}

// nodeOf returns node i's zone, kind and protocol.
func nodeOf(cfg config, i int) (zone, kind string, delta bool) {
	if len(cfg.zones) > 0 {
		zone = cfg.zones[i%len(cfg.zones)]
	}
	kind = cfg.kinds[(i/max(1, len(cfg.zones)))%len(cfg.kinds)]
	switch cfg.protocol {
	case "delta":
		delta = true
	case "mixed":
		delta = i%2 == 1
	}
	return zone, kind, delta
}

func groupNames(cfg config) []string {
	seen := map[string]bool{}
	var out []string
	for i := 0; i < min(cfg.streams, 64); i++ {
		zone, kind, _ := nodeOf(cfg, i)
		g := kind
		if zone != "" {
			g += "/" + zone
		}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// openTarget starts dynup (or attaches to one) with the seeded upstreams.
func openTarget(ctx context.Context, cfg config, ups []upstreamSeed) (*target, error) {
	if cfg.attach != "" {
		addrs := strings.Split(cfg.attach, ",")
		if len(addrs) != 2 {
			return nil, fmt.Errorf("-attach wants ADMIN,XDS addresses")
		}
		t := &target{admin: addrs[0], xds: addrs[1], pid: cfg.pid, logs: &tail{}, stop: func() error { return nil }}
		if t.pid == 0 {
			t.pid = -1 // nothing to measure
		}
		adm := newAdmin(t.admin)
		for _, u := range ups {
			if _, err := adm.putServers(u.Name, u.Servers); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	dir, err := os.MkdirTemp("", "dynup-load-")
	if err != nil {
		return nil, err
	}
	if cfg.inProcess {
		if err := seedConfig(dir, ups); err != nil {
			return nil, err
		}
		t, err := startInProcess(ctx, dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		stop := t.stop
		t.stop = func() error { err := stop(); os.RemoveAll(dir); return err }
		return t, nil
	}
	bin := cfg.dynupBin
	if bin == "" {
		if bin, err = buildDynup(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := dir + "/data"
	if err := os.Mkdir(data, 0o750); err != nil {
		return nil, err
	}
	if err := seedConfig(data, ups); err != nil {
		return nil, err
	}
	t, err := startDynup(ctx, bin, data, cfg.dynupFlags)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stop := t.stop
	t.stop = func() error { err := stop(); os.RemoveAll(dir); return err }
	return t, nil
}

// fleet is the simulated Envoys.
type fleet struct {
	cfg    config
	addr   string
	envoys []*envoy
	rec    *recorder
	errors atomic.Int64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newFleet(cfg config, addr string) *fleet {
	f := &fleet{cfg: cfg, addr: addr, rec: newRecorder()}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	for i := 0; i < cfg.streams; i++ {
		zone, kind, delta := nodeOf(cfg, i)
		f.envoys = append(f.envoys, newEnvoy(i, zone, kind, delta, f.rec.reached))
	}
	return f
}

// connect opens every stream at rate per second and waits until each has been served everything.
func (f *fleet) connect(ctx context.Context, rate float64) error {
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for _, e := range f.envoys {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.hold(e)
		}()
	}
	for _, e := range f.envoys {
		select {
		case <-e.served:
		case <-ctx.Done():
			return fmt.Errorf("%w; %d stream errors", ctx.Err(), f.errors.Load())
		}
	}
	return nil
}

// hold keeps node e connected until the fleet closes: like Envoy, it reconnects after a failure, with
// back-off.
func (f *fleet) hold(e *envoy) {
	backoff := 250 * time.Millisecond
	for {
		cc, err := dial(f.addr)
		if err == nil {
			err = e.run(f.ctx, cc)
			cc.Close()
		}
		if f.ctx.Err() != nil {
			return
		}
		if f.errors.Add(1) <= 3 {
			fmt.Fprintf(os.Stderr, "stream %d: %v (reconnecting)\n", e.id, err)
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (f *fleet) responses() int64 {
	var n int64
	for _, e := range f.envoys {
		n += e.responses.Load()
	}
	return n
}

// close ends every stream and waits for them.
func (f *fleet) close() {
	f.cancel()
	f.wg.Wait()
}

// recorder collects, per change generation, when each stream ACKed it.
type recorder struct {
	mu      sync.Mutex
	acks    map[int64][]time.Time
	pending map[int64]int
	done    map[int64]chan struct{}
}

func newRecorder() *recorder {
	return &recorder{acks: map[int64][]time.Time{}, pending: map[int64]int{}, done: map[int64]chan struct{}{}}
}

// expect registers change gen, to be ACKed by streams streams; the channel closes when it is.
func (r *recorder) expect(gen int64, streams int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := make(chan struct{})
	r.done[gen], r.pending[gen] = ch, streams
	return ch
}

// reached records that stream e ACKed every generation after from, up to gen, at at.
func (r *recorder) reached(_ *envoy, from, gen int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for g := from + 1; g <= gen; g++ {
		ch, ok := r.done[g]
		if !ok {
			continue // a generation from before this fleet connected
		}
		r.acks[g] = append(r.acks[g], at)
		if r.pending[g]--; r.pending[g] == 0 {
			close(ch)
		}
	}
}

func (r *recorder) times(gen int64) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.acks[gen]...)
}
