package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// dynup collects garbage at its own default unless GOGC is set, which wins.
func TestGCPercentDefaultUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set, dynup changed the GC target to %d", got)
	}
	unsetenv(t, "GOGC")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Fatalf("without GOGC, the GC target is %d, want %d", got, defaultGCPercent)
	}
}

// unsetenv removes an environment variable for the test, restoring it after.
func unsetenv(t *testing.T, key string) {
	t.Setenv(key, "") // registers the restore
	if err := os.Unsetenv(key); err != nil {
		t.Fatal(err)
	}
}
