// Command load is dynup's fleet load tool: it runs N simulated Envoys against a dynup over real gRPC on
// loopback, changes one endpoint at a time through the admin API, and measures how long each change takes
// to be ACKed by every stream, with dynup's CPU, memory and allocations. docs/benchmarks.md has the runs.
//
//	go run ./test/load -streams 1000                  # state of the world
//	go run ./test/load -streams 1000 -protocol delta  # incremental xDS
//
// By default it builds ./cmd/dynup and runs it as a subprocess on a temporary data dir seeded with
// -upstreams upstreams of -servers servers each; -attach measures a dynup that is already running.
// Everything is bounded: -timeout ends the run, connections open at -connect-rate.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/dynup/dynup/test/localproc"
)

type config struct {
	streams            int
	protocol           string // sotw, delta or mixed
	zones, kinds       []string
	upstreams, servers int
	changes            int
	changeGap          time.Duration
	changeTimeout      time.Duration
	connectRate        float64
	reconnect          bool
	reconnectRate      float64
	dynupBin           string
	dynupFlags         []string
	attach             string // admin,xds addresses of a running dynup
	inProcess          bool
	cpuProfile         string
	memProfile         string
	pid                int
	timeout            time.Duration
	settle             time.Duration
	settleGC           time.Duration
	jsonOut            string
	verbose            bool
	decode             string
	fleetGOGC          int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var zones, kinds, dynupFlags string
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.streams, "streams", 100, "simulated Envoy ADS streams, one connection each")
	fs.StringVar(&c.protocol, "protocol", "sotw", "sotw (state of the world), delta (incremental) or mixed (half each)")
	fs.StringVar(&zones, "zones", "a,b", "node zones, assigned round robin (a group per zone); empty for none")
	fs.StringVar(&kinds, "kinds", "envoy", "node kinds (dynup.kind metadata), assigned round robin: envoy, grpc")
	fs.IntVar(&c.upstreams, "upstreams", 100, "upstreams seeded before the run")
	fs.IntVar(&c.servers, "servers", 10, "servers per seeded upstream, spread over the zones")
	fs.IntVar(&c.changes, "changes", 20, "one-endpoint changes, one at a time, each waited for on every stream")
	fs.DurationVar(&c.changeGap, "change-gap", 200*time.Millisecond, "pause between a change being ACKed everywhere and the next")
	fs.DurationVar(&c.changeTimeout, "change-timeout", 30*time.Second, "give up on a change not ACKed by every stream in this time")
	fs.Float64Var(&c.connectRate, "connect-rate", 500, "streams opened per second")
	fs.IntVar(&c.fleetGOGC, "fleet-gogc", 400, "garbage collection target (as GOGC) of this tool's own process, the simulated fleet: its collections stall the nodes' ACKs, which the tool counts as propagation time, where real Envoys on their own machines would not (dynup's setting is left alone; -1 keeps Go's: $GOGC, else 100)")
	fs.BoolVar(&c.reconnect, "reconnect", false, "at the end, drop every stream and measure until all are served again")
	fs.Float64Var(&c.reconnectRate, "reconnect-rate", 2000, "streams reopened per second with -reconnect")
	fs.StringVar(&c.dynupBin, "dynup-bin", "", "dynup binary to run (default: go build ./cmd/dynup)")
	fs.StringVar(&dynupFlags, "dynup-flags", "", "extra flags for the dynup subprocess, space separated")
	fs.StringVar(&c.attach, "attach", "", "ADMIN,XDS addresses of a running dynup to use instead of starting one")
	fs.BoolVar(&c.inProcess, "inprocess", false, "run dynup's pipeline inside the tool (for -cpuprofile; CPU and memory figures then include the fleet)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the run (connect, changes, reconnect) to this file: this tool's work, and dynup's with -inprocess")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile to this file once the fleet is connected, and to FILE.changes after the changes (with -inprocess it shows dynup's per-stream memory and allocations)")
	fs.IntVar(&c.pid, "pid", 0, "with -attach: the dynup process to measure (CPU, RSS)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "the whole run ends after this")
	fs.DurationVar(&c.settle, "settle", 2*time.Second, "idle time before memory is read")
	fs.DurationVar(&c.settleGC, "settle-gc", 0, "before reading memory, wait up to this long for dynup to run two garbage collections "+
		"(an idle Go process runs one every 2 minutes), so that garbage and pooled buffers of the connect storm are not counted")
	fs.BoolVar(&c.verbose, "v", false, "print each change's figures")
	fs.StringVar(&c.decode, "decode", "full", "full: decode every resource into Envoy's messages, as Envoy does; "+
		"light: read only the names and ports a node needs from the wire format (the fleet's decoding then costs far less CPU, which matters when it shares the machine with dynup)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	if err := localproc.Parse(fs, args); err != nil {
		return c, err
	}
	c.zones, c.kinds, c.dynupFlags = splitList(zones), splitList(kinds), strings.Fields(dynupFlags)
	switch {
	case c.streams < 1 || c.upstreams < 1 || c.servers < 1 || c.changes < 0:
		return c, fmt.Errorf("-streams, -upstreams and -servers must be positive, -changes not negative")
	case c.protocol != "sotw" && c.protocol != "delta" && c.protocol != "mixed":
		return c, fmt.Errorf("-protocol %q is not sotw, delta or mixed", c.protocol)
	case c.connectRate <= 0 || c.reconnectRate <= 0:
		return c, fmt.Errorf("-connect-rate and -reconnect-rate must be positive")
	case c.decode != "full" && c.decode != "light":
		return c, fmt.Errorf("-decode %q is not full or light", c.decode)
	case len(c.kinds) == 0:
		return c, fmt.Errorf("-kinds must name at least one kind")
	case c.changes > 40000:
		return c, fmt.Errorf("-changes is at most 40000 (markers are ports)")
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(localproc.ArgsStatus("load", err, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stdout)
	if res != nil && cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// result is everything a run measured; the JSON keys are what docs/benchmarks.md quotes.
type result struct {
	Machine struct {
		CPUs          int    `json:"cpus"`
		LoadAvgBefore string `json:"load_avg_before"`
		LoadAvgAfter  string `json:"load_avg_after"`
	} `json:"machine"`
	Streams   int      `json:"streams"`
	Protocol  string   `json:"protocol"`
	Groups    []string `json:"groups"`
	Upstreams int      `json:"upstreams"`
	Servers   int      `json:"servers_per_upstream"`
	Decode    string   `json:"decode"`

	Connect struct {
		Seconds       float64 `json:"seconds"`        // first stream opened → every stream served
		StreamErrors  int64   `json:"stream_errors"`  // streams that failed (not counting those the tool closed)
		ResponsesSeen int64   `json:"responses_seen"` // responses decoded and ACKed while connecting
	} `json:"connect"`
	Memory struct {
		RSSIdleMiB      float64  `json:"rss_idle_mib"`
		RSSStreamsMiB   float64  `json:"rss_with_streams_mib"`
		RSSPeakMiB      float64  `json:"rss_peak_mib"`
		PerStreamKiB    float64  `json:"rss_per_stream_kib"`
		HeapPerStreamKB *float64 `json:"heap_inuse_per_stream_kib,omitempty"`
		// StackPerStreamKB and GoroutinesPerStream are the goroutine stacks the streams hold.
		StackPerStreamKB    *float64 `json:"stack_inuse_per_stream_kib,omitempty"`
		GoroutinesPerStream *float64 `json:"goroutines_per_stream,omitempty"`
	} `json:"memory"`
	Changes struct {
		Count          int         `json:"count"`
		Completed      int         `json:"completed"` // ACKed by every stream within -change-timeout
		FromAccepted   percentiles `json:"accepted_to_ack"`
		FromPostReturn percentiles `json:"post_returned_to_ack"`
		PerChangeP99   percentiles `json:"per_change_p99"` // distribution of each change's own p99
		CPUMsPerChange float64     `json:"dynup_cpu_ms_per_change"`
		// ToolCPUMsPer is this tool's own CPU per change (the simulated fleet decoding and ACKing), which on
		// one machine competes with dynup for the same cores.
		ToolCPUMsPer float64  `json:"tool_cpu_ms_per_change"`
		AllocMiBPer  *float64 `json:"dynup_alloc_mib_per_change,omitempty"`
		EncodesPer   *float64 `json:"encodes_per_change,omitempty"`
		// ResponsesPer are responses sent per change, by resource type: an endpoint change should send
		// one ClusterLoadAssignment response per stream and nothing else.
		ResponsesPer map[string]float64 `json:"responses_per_change,omitempty"`
		NoCDS        *bool              `json:"endpoint_change_sent_no_cds,omitempty"`
		// Stages are dynup's own averages per change, from its histograms: the wait before publishing
		// (queueing and burst coalescing), the publish (translation, encoding, handing snapshots to
		// streams) and the hand-over to waiting streams alone.
		Stages map[string]float64 `json:"dynup_stage_ms,omitempty"`
	} `json:"changes"`
	Reconnect *struct {
		Seconds        float64 `json:"seconds"` // first stream reopened → every stream served again
		CPUSeconds     float64 `json:"dynup_cpu_seconds"`
		ToolCPUSeconds float64 `json:"tool_cpu_seconds"`
		StreamErrors   int64   `json:"stream_errors"`
	} `json:"reconnect,omitempty"`
}

func run(ctx context.Context, cfg config, out io.Writer) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	res := &result{Streams: cfg.streams, Protocol: cfg.protocol, Upstreams: cfg.upstreams, Servers: cfg.servers, Decode: cfg.decode}
	lightDecode = cfg.decode == "light"
	fleetGC := "default"
	if cfg.fleetGOGC >= 0 {
		debug.SetGCPercent(cfg.fleetGOGC)
		fleetGC = fmt.Sprint(cfg.fleetGOGC)
	}
	res.Machine.CPUs, res.Machine.LoadAvgBefore = runtime.NumCPU(), loadAverage()
	res.Groups = groupNames(cfg)
	fmt.Fprintf(out, "dynup load: %d %s streams in groups %v (%s decoding, fleet GOGC %s); %d upstreams × %d servers; %d CPUs, load average %s\n",
		cfg.streams, cfg.protocol, res.Groups, cfg.decode, fleetGC, cfg.upstreams, cfg.servers, res.Machine.CPUs, res.Machine.LoadAvgBefore)
	warnFileLimit(out, cfg.streams)

	ups := seedUpstreams(cfg)
	dyn, err := openTarget(ctx, cfg, ups)
	if err != nil {
		return nil, err
	}
	defer dyn.stop()
	adm := newAdmin(dyn.admin)
	fleet := newFleet(cfg, dyn.xds)
	defer func() { fleet.close() }() // the fleet of the moment: -reconnect replaces it

	// Idle dynup, then the fleet.
	sleep(ctx, cfg.settle)
	idle, _ := readProc(dyn.pid)
	mIdle := scrape(adm)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	began := time.Now()
	if err := fleet.connect(ctx, cfg.connectRate); err != nil {
		return res, fmt.Errorf("connect: %w\n%s", err, dyn.logs)
	}
	res.Connect.Seconds = time.Since(began).Seconds()
	res.Connect.StreamErrors, res.Connect.ResponsesSeen = fleet.errors.Load(), fleet.responses()
	fmt.Fprintf(out, "connect: %d streams served (CDS, EDS, LDS, RDS ACKed) %.2fs after the first opened (%.0f/s), %d stream errors\n",
		cfg.streams, res.Connect.Seconds, cfg.connectRate, res.Connect.StreamErrors)

	sleep(ctx, cfg.settle)
	if cfg.settleGC > 0 {
		waitForGC(ctx, adm, cfg.settleGC, out)
	}
	withStreams, _ := readProc(dyn.pid)
	if cfg.memProfile != "" {
		if err := writeHeapProfile(cfg.memProfile); err != nil {
			return res, err
		}
	}
	mBefore := scrape(adm)
	res.Memory.RSSIdleMiB, res.Memory.RSSStreamsMiB = mib(idle.rss), mib(withStreams.rss)
	res.Memory.PerStreamKiB = float64(withStreams.rss-idle.rss) / 1024 / float64(cfg.streams)
	perStream := func(name string, scale float64) *float64 {
		before, ok1 := mIdle.sum(name)
		after, ok2 := mBefore.sum(name)
		if !ok1 || !ok2 {
			return nil
		}
		v := (after - before) / scale / float64(cfg.streams)
		return &v
	}
	res.Memory.HeapPerStreamKB = perStream("go_memstats_heap_inuse_bytes", 1024)
	res.Memory.StackPerStreamKB = perStream("go_memstats_stack_inuse_bytes", 1024)
	res.Memory.GoroutinesPerStream = perStream("go_goroutines", 1)
	fmt.Fprintf(out, "memory: dynup RSS %.1f MiB idle, %.1f MiB with %d streams: %.1f KiB per stream (Go heap %s KiB, stacks %s KiB, %s goroutines)\n",
		res.Memory.RSSIdleMiB, res.Memory.RSSStreamsMiB, cfg.streams, res.Memory.PerStreamKiB,
		optional(res.Memory.HeapPerStreamKB, "%.1f"), optional(res.Memory.StackPerStreamKB, "%.1f"), optional(res.Memory.GoroutinesPerStream, "%.1f"))

	// The fleet's garbage from connecting (10,000 clients' worth) is collected now, not during the changes:
	// with -fleet-gogc 400 its heap would reach ~1 GB and be marked in the middle of one, stalling every
	// simulated node's ACK, where real Envoys have no collector. (With -inprocess this collects dynup's
	// heap too.)
	runtime.GC()
	if err := runChanges(ctx, cfg, res, adm, fleet, ups, dyn.pid, mBefore, out); err != nil {
		return res, err
	}

	if cfg.memProfile != "" && cfg.changes > 0 {
		if err := writeHeapProfile(cfg.memProfile + ".changes"); err != nil {
			return res, err
		}
	}
	if cfg.reconnect {
		errs := fleet.errors.Load()
		fleet.close()
		runtime.GC() // the closed fleet's garbage, as before the changes: not collected in the middle of the reconnect
		before, _ := readProc(dyn.pid)
		toolBefore := toolCPU()
		fleet = newFleet(cfg, dyn.xds)
		began := time.Now()
		if err := fleet.connect(ctx, cfg.reconnectRate); err != nil {
			return res, fmt.Errorf("reconnect: %w", err)
		}
		after, _ := readProc(dyn.pid)
		res.Reconnect = &struct {
			Seconds        float64 `json:"seconds"`
			CPUSeconds     float64 `json:"dynup_cpu_seconds"`
			ToolCPUSeconds float64 `json:"tool_cpu_seconds"`
			StreamErrors   int64   `json:"stream_errors"`
		}{time.Since(began).Seconds(), (after.cpu - before.cpu).Seconds(), (toolCPU() - toolBefore).Seconds(), fleet.errors.Load() - errs}
		fmt.Fprintf(out, "reconnect: all %d streams served again %.2fs after the first reopened (%.0f/s); CPU: dynup %.1f s, this tool %.1f s; %d stream errors\n",
			cfg.streams, res.Reconnect.Seconds, cfg.reconnectRate, res.Reconnect.CPUSeconds, res.Reconnect.ToolCPUSeconds, res.Reconnect.StreamErrors)
	}
	final, _ := readProc(dyn.pid)
	res.Memory.RSSPeakMiB = mib(final.hwm)
	res.Machine.LoadAvgAfter = loadAverage()
	fmt.Fprintf(out, "dynup RSS peak %.1f MiB; load average now %s\n", res.Memory.RSSPeakMiB, res.Machine.LoadAvgAfter)
	return res, nil
}

// runChanges makes the one-endpoint changes one at a time and measures each on every stream.
func runChanges(ctx context.Context, cfg config, res *result, adm *admin, fleet *fleet, ups []upstreamSeed,
	pid int, mBefore metrics, out io.Writer) error {
	if cfg.changes == 0 {
		return nil
	}
	res.Changes.Count = cfg.changes
	cpuBefore, _ := readProc(pid)
	toolBefore := toolCPU()
	var fromAccepted, fromReturn, perChange []time.Duration
	for k := 1; k <= cfg.changes; k++ {
		u := ups[(k-1)%len(ups)]
		servers := append(u.Servers[:0:0], u.Servers...)
		servers[0].Port = markerBase + k
		done := fleet.rec.expect(int64(k), cfg.streams)
		id, err := adm.putServers(u.Name, servers)
		returned := time.Now()
		if err != nil {
			return err
		}
		select {
		case <-done:
			res.Changes.Completed++
		case <-time.After(cfg.changeTimeout):
			fmt.Fprintf(out, "change %d: not ACKed by every stream within %s\n", k, cfg.changeTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
		accepted, err := adm.acceptedAt(id)
		if err != nil {
			return err
		}
		acks := fleet.rec.times(int64(k))
		var mine []time.Duration
		for _, at := range acks {
			mine = append(mine, at.Sub(accepted))
			fromReturn = append(fromReturn, at.Sub(returned))
		}
		fromAccepted = append(fromAccepted, mine...)
		p := percentilesOf(mine)
		perChange = append(perChange, time.Duration(p.P99*float64(time.Millisecond)))
		if cfg.verbose {
			fmt.Fprintf(out, "  change %d (upstream %s): %d ACKs, accepted → ACK p50 %.1f ms, p99 %.1f ms, max %.1f ms; POST took %.1f ms after acceptance\n",
				k, u.Name, p.N, p.P50, p.P99, p.Max, ms(returned.Sub(accepted)))
		}
		sleep(ctx, cfg.changeGap)
	}
	cpuAfter, _ := readProc(pid)
	mAfter := scrape(adm)
	n := float64(cfg.changes)
	c := &res.Changes
	c.FromAccepted, c.FromPostReturn, c.PerChangeP99 = percentilesOf(fromAccepted), percentilesOf(fromReturn), percentilesOf(perChange)
	c.CPUMsPerChange = ms(cpuAfter.cpu-cpuBefore.cpu) / n
	c.ToolCPUMsPer = ms(toolCPU()-toolBefore) / n
	if d := delta(mBefore, mAfter, "go_memstats_alloc_bytes_total"); d != nil {
		v := *d / (1 << 20) / n
		c.AllocMiBPer = &v
	}
	if d := delta(mBefore, mAfter, "dynup_xds_encodes_total"); d != nil {
		v := *d / n
		c.EncodesPer = &v
	}
	c.ResponsesPer = map[string]float64{}
	for _, typ := range []string{"Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"} {
		if d := delta(mBefore, mAfter, `dynup_xds_responses_total{type=`+typ+`}`); d != nil {
			c.ResponsesPer[typ] = *d / n
		}
	}
	c.Stages = map[string]float64{}
	for stage, name := range map[string]string{"wait": "dynup_publish_wait_seconds", "publish": "dynup_publish_seconds",
		"fanout": "dynup_xds_fanout_seconds"} {
		sum, count := delta(mBefore, mAfter, name+"_sum"), delta(mBefore, mAfter, name+"_count")
		if sum != nil && count != nil && *count > 0 {
			c.Stages[stage] = *sum / *count * 1000
		}
	}
	if v, ok := c.ResponsesPer["Cluster"]; ok {
		none := v == 0
		c.NoCDS = &none
	}
	fmt.Fprintf(out, "changes: %d of %d one-endpoint changes ACKed by all %d streams\n", c.Completed, c.Count, cfg.streams)
	fmt.Fprintf(out, "  accepted → ACK, all streams × changes: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)\n",
		c.FromAccepted.P50, c.FromAccepted.P99, c.FromAccepted.Max, c.FromAccepted.N)
	fmt.Fprintf(out, "  POST returned → ACK: p50 %.1f ms, p99 %.1f ms, max %.1f ms; each change's p99: median %.1f ms, max %.1f ms\n",
		c.FromPostReturn.P50, c.FromPostReturn.P99, c.FromPostReturn.Max, c.PerChangeP99.P50, c.PerChangeP99.Max)
	fmt.Fprintf(out, "  this tool (the fleet) used %.1f ms CPU per change; dynup's stages per change: wait %s ms, publish %s ms (of which hand-over to streams %s ms per group)\n",
		c.ToolCPUMsPer, stage(c.Stages, "wait"), stage(c.Stages, "publish"), stage(c.Stages, "fanout"))
	fmt.Fprintf(out, "  dynup per change: %.1f ms CPU, %s allocated, %s encodes, responses by type %v, endpoint change sent no CDS: %s\n",
		c.CPUMsPerChange, optional(c.AllocMiBPer, "%.2f MiB"), optional(c.EncodesPer, "%.1f"), c.ResponsesPer, optionalBool(c.NoCDS))
	return nil
}

// waitForGC waits until dynup has collected garbage twice (sync.Pool keeps buffers through one), or for
// at most limit.
func waitForGC(ctx context.Context, adm *admin, limit time.Duration, out io.Writer) {
	start, _ := scrape(adm).sum("go_gc_duration_seconds_count")
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n, ok := scrape(adm).sum("go_gc_duration_seconds_count"); !ok || n >= start+2 {
			return
		}
		sleep(ctx, 2*time.Second)
	}
	fmt.Fprintf(out, "memory: dynup ran fewer than two garbage collections in %s; figures include garbage\n", limit)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// A heap profile is as of the last collection; with the fleet's GOGC raised there may have been none
	// since the previous profile, which would then be written again.
	runtime.GC()
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// toolCPU is the CPU time this process used so far.
func toolCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func stage(m map[string]float64, name string) string {
	if v, ok := m[name]; ok {
		return fmt.Sprintf("%.1f", v)
	}
	return "n/a"
}

func optional(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func optionalBool(v *bool) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprint(*v)
}

func scrape(adm *admin) metrics {
	text, err := adm.metricsText()
	if err != nil {
		return metrics{}
	}
	m, err := parseMetrics(text)
	if err != nil {
		return metrics{}
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// warnFileLimit says when the open-file limit is too low for the streams (each is a connection, on both
// sides when dynup runs here). Go raises the soft limit to the hard one at start; only root raises that.
func warnFileLimit(out io.Writer, streams int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(streams)+256 {
		fmt.Fprintf(out, "warning: open-file limit %d is below %d streams; raise it (ulimit -n) or expect failures\n", lim.Cur, streams)
	}
}
