package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is dynup's garbage collection target when GOGC is not set. dynup's heap is mostly
// long-lived per-stream state (about 50 KiB per xDS stream). With Go's default of 100, a fleet of 10,000
// streams set off a collection every 30–40 endpoint changes, and its marking, on a machine whose cores the
// change already kept busy, pushed that change's p99 from ~0.7 s to 1.1–1.25 s (docs/benchmarks.md, B1).
// 200 halves the collections for ~10% more memory per stream.
const defaultGCPercent = 200

// setGCPercent applies defaultGCPercent unless GOGC says otherwise.
func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
}
