package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// printReport prints the run's setup, the machine and one Markdown table, ready for docs/benchmarks.md.
func printReport(w io.Writer, c config, r *result) {
	fmt.Fprintf(w, "\nB6: nginx + consul-template vs dynup, same Consul, one run (%s)\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "machine: %s\n", machine())
	fmt.Fprintf(w, "versions: %s\n", versions(c))
	stopWord := fmt.Sprintf("%s after its deregistration", c.grace)
	if c.grace == 0 {
		stopWord = "as soon as it is deregistered"
	}
	fmt.Fprintf(w, "run: %d changes in %s, one at least every %s: register a new instance with the agent, wait until both "+
		"sides served it (at most %s), deregister the oldest (%d stay live); a deregistered instance stops gracefully %s. "+
		"%d clients per side, each sending its next request on the first %s tick after the previous answer, on keep-alive "+
		"connections. Logs and changes.log (every change's timestamps): %s\n\n",
		r.changes, r.took.Round(time.Second), c.pace, c.changeTimeout, c.live, stopWord, c.clients, c.interval, r.dir)

	fmt.Fprintf(w, "| | %s | %s |\n|---|---|---|\n", r.sides[0].name, r.sides[1].name)
	row := func(label string, f func(s *side) string) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", label, f(r.sides[0]), f(r.sides[1]))
	}
	for _, q := range []struct {
		label string
		p     float64
	}{{"p50", 0.50}, {"p99", 0.99}, {"max", 1}} {
		row("registration → first request on the new instance, "+q.label, func(s *side) string { return quantile(r.reach[s], q.p) })
	}
	row("changes not served within "+c.changeTimeout.String(), func(s *side) string { return fmt.Sprint(r.missed[s]) })
	for _, q := range []struct {
		label string
		p     float64
	}{{"p50", 0.50}, {"p99", 0.99}, {"max", 1}} {
		row("deregistration → last request on the old instance, "+q.label, func(s *side) string { return quantile(r.drain[s], q.p) })
	}
	row("failed requests / requests during the changes", func(s *side) string {
		total, failed := s.total.Load(), s.failed.Load()
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(failed) / float64(total)
		}
		return fmt.Sprintf("%d / %d (%.3f%%)", failed, total, pct)
	})
	row("requests per second (all clients of the side)", func(s *side) string {
		return fmt.Sprintf("%.0f", float64(s.total.Load())/r.took.Seconds())
	})
	for _, s := range r.sides {
		s.mu.Lock()
		for msg, n := range s.errSamples {
			fmt.Fprintf(w, "\n%s failure (%d×): %s", s.name, n, msg)
		}
		s.mu.Unlock()
	}
	fmt.Fprintln(w)
}

// quantile is the nearest-rank quantile p of ds (p=1: the largest), rounded to 0.1ms.
func quantile(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "–"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))].Round(100 * time.Microsecond).String()
}

// machine is what the figures depend on: CPUs, CPU model, memory, kernel.
func machine() string {
	model, mem := "unknown CPU", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			mem = ", " + strings.Join(strings.Fields(line)[1:], " ") + " memory"
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("nproc %d, %s%s, %s/%s, kernel %s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH,
		strings.TrimSpace(string(kernel)))
}

func versions(c config) string {
	first := func(bin string, args ...string) string {
		out, _ := exec.Command(bin, args...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	return strings.Join([]string{
		first(c.nginxBin, "-v"), first(c.ctBin, "-version"), first(c.consulBin, "version"), "dynup built with " + runtime.Version(),
	}, "; ")
}
