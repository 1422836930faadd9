package harness

import (
	"testing"
	"time"
)

// Kill ends dynup with SIGKILL, as a crash or the OOM killer would: no shutdown, nothing flushed, streams
// cut without a goodbye. It returns once the process is gone.
func (d *Dynup) Kill(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill dynup: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("dynup still running 15s after SIGKILL")
	}
}

// Revive starts dynup again after Kill, on the same data dir and the same ports, so that connected
// clients reconnect to it.
func (d *Dynup) Revive(t testing.TB) {
	t.Helper()
	select {
	case <-d.exited:
	default:
		t.Fatal("Revive: dynup is still running")
	}
	d.start(t, d.AdminAddr, d.XDSAddr)
}
