package registry

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutUpstreamEndpoint measures the store's share of a one-endpoint change with 10,000 upstreams of
// 10 servers each: validation, the file backend's save (a journal append and fsync, and now and then a
// fold into the file) and building the new state.
func BenchmarkPutUpstreamEndpoint(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("upstreams=%d", n), func(b *testing.B) {
			ctx := context.Background()
			backend, err := NewFileBackend(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{Upstreams: map[string]Upstream{}}
			for i := 0; i < n; i++ {
				u := Upstream{Name: fmt.Sprintf("svc-%05d", i)}
				for j := 0; j < 10; j++ {
					u.Servers = append(u.Servers, Server{Host: fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j+1), Port: 8080})
				}
				cfg.Upstreams[u.Name] = u
			}
			s, err := NewStore(ctx, backend)
			if err != nil {
				b.Fatal(err)
			}
			// The configuration in the file, as after a start: writes then append to the journal, which is
			// folded into the file once it outgrows it (a fold costs a whole-file write; the loop pays its
			// share of those).
			if err := backend.SaveAll(cfg, 1); err != nil {
				b.Fatal(err)
			}
			s.ReplaceConfig(cfg, "bench", nil, nil)
			b.ReportAllocs()
			cpu := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				u, _ := s.Upstream("svc-00000")
				u.Servers = append([]Server(nil), u.Servers...)
				u.Servers[0].Port = 9000 + i%1000
				if _, err := s.PutUpstream(ctx, u, "admin"); err != nil {
					b.Fatal(err)
				}
			}
			// ns/op is wall time and includes waiting for fsync; the target is CPU, the garbage
			// collector's included.
			b.ReportMetric(float64(processCPU()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// processCPU is the CPU time this process has used, in user and system mode.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuildState measures building a State from 10,000 upstreams (merge, health, content hash), which
// every accepted change does.
func BenchmarkBuildState(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.build(uint64(i), Change{})
	}
}

// benchStore is a store of 10,000 upstreams of 10 servers each.
func benchStore(b *testing.B) *Store {
	cfg := Config{Upstreams: map[string]Upstream{}}
	for i := 0; i < 10000; i++ {
		u := Upstream{Name: fmt.Sprintf("svc-%05d", i)}
		for j := 0; j < 10; j++ {
			u.Servers = append(u.Servers, Server{Host: fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j+1), Port: 8080})
		}
		cfg.Upstreams[u.Name] = u
	}
	s, err := NewStore(context.Background(), &FileBackend{path: b.TempDir() + "/dynup.json"})
	if err != nil {
		b.Fatal(err)
	}
	s.ReplaceConfig(cfg, "bench", nil, nil)
	return s
}

// BenchmarkBuildStateChanged measures building the state after a change to one upstream's servers, with
// 10,000 upstreams: the store starts from the current state's parts.
func BenchmarkBuildStateChanged(b *testing.B) {
	s := benchStore(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := s.cfg.Upstreams["svc-00000"]
		u.Servers = append([]Server(nil), u.Servers...)
		u.Servers[0].Port = 9000 + i%1000
		s.cfg.Upstreams["svc-00000"] = u
		s.publish(Change{Revision: s.current.Revision + 1, Upstreams: []string{"svc-00000"}})
	}
}
