//go:build unix

package localproc

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A child's own children stay in its process group (nginx's workers do); Stop kills them too. The
// grandchild holds a FIFO open for writing: reading it ends when the grandchild is gone.
func TestStopKillsWhatIsLeftInTheProcessGroup(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, err := startSelf(t, "parent", LineContaining("started"), "LOCALPROC_TEST_FIFO="+fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	f, err := os.Open(fifo) // returns once the grandchild has it open
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.Stop()
	gone := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, f); gone <- err }()
	select {
	case err := <-gone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the grandchild still holds the FIFO 10s after Stop")
	}
}
