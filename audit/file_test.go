package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// slowWriter is a destination that takes a while for each write, as a
// busy disk would.
type slowWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestFileConcurrentFlushes writes from many goroutines past the flush size
// again and again, to a slow destination, while the timer flushes too: a
// lock-order mistake between appending and writing hangs here.
func TestFileConcurrentFlushes(t *testing.T) {
	dst := &slowWriter{}
	f := &File{w: dst}
	f.timer = time.AfterFunc(time.Hour, f.Flush)
	f.timer.Stop()
	l := New(f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 2000; i++ {
					l.Log(&Record{RequestID: "concurrent", Path: strings.Repeat("p", 100)})
				}
			}()
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("concurrent writers deadlocked")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if n := strings.Count(dst.b.String(), "\n"); n != 16*2000 {
		t.Fatalf("got %d lines, want %d", n, 16*2000)
	}
}
