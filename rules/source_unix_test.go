//go:build unix

package rules

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestFileSourceFIFO checks that a FIFO is refused rather than opened: with
// no writer, opening it would block the load forever.
func TestFileSourceFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	checkRead(t, FileSource(fifo), 0, "not a regular file")
}
