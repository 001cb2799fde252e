package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileBatchesAndFlushes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	l, f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, _ := os.ReadFile(p)
		return string(b)
	}
	l.Log(&Record{RequestID: "one"})
	if got := read(path); got != "" {
		t.Fatalf("a record reached the file before the flush interval: %q", got)
	}
	deadline := time.Now().Add(FlushInterval + time.Second)
	for !strings.Contains(read(path), `"request_id":"one"`) {
		if time.Now().After(deadline) {
			t.Fatal("a record was not written within the flush interval")
		}
		time.Sleep(5 * time.Millisecond)
	}

	t.Run("a full buffer is written at once", func(t *testing.T) {
		for i := 0; i < 400; i++ {
			l.Log(&Record{RequestID: "bulk", Path: strings.Repeat("x", 200)})
		}
		if n := strings.Count(read(path), `"bulk"`); n == 0 {
			t.Fatal("64 KiB of records waited for the timer")
		}
	})
	t.Run("reopen writes the old file first", func(t *testing.T) {
		l.Log(&Record{RequestID: "before-rotation"})
		os.Rename(path, path+".1")
		if err := f.Reopen(); err != nil {
			t.Fatal(err)
		}
		l.Log(&Record{RequestID: "after-rotation"})
		f.Flush()
		if !strings.Contains(read(path+".1"), "before-rotation") || !strings.Contains(read(path), "after-rotation") {
			t.Fatal("records went to the wrong file across a reopen")
		}
	})
	t.Run("close flushes, later writes fail", func(t *testing.T) {
		l.Log(&Record{RequestID: "last"})
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(read(path), `"last"`) {
			t.Fatal("Close did not write the buffered record")
		}
		if err := l.Log(&Record{RequestID: "too-late"}); err == nil {
			t.Fatal("a write after Close succeeded")
		}
		if l.Failures() != 1 {
			t.Errorf("got %d failures, want 1", l.Failures())
		}
	})
}
