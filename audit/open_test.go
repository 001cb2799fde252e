package audit_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/cputime"
)

func TestOpenStdout(t *testing.T) {
	for _, path := range []string{"-", ""} {
		t.Run("path "+path, func(t *testing.T) {
			var stdout bytes.Buffer
			l, c, err := audit.Open(path, &stdout)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := l.Log(&audit.Record{Time: at, RequestID: "r1"}); err != nil {
				t.Fatalf("Log: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: got %v, want nil", err)
			}
			if got := scanLines(stdout.Bytes()); len(got) != 1 || !strings.Contains(got[0], `"request_id":"r1"`) {
				t.Errorf("got %q, want one record with request_id r1", got)
			}
		})
	}
}

func TestOpenFile(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for i, id := range []string{"first", "second"} {
		l, c, err := audit.Open(path, nil)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		if err := l.Log(&audit.Record{Time: at, RequestID: id}); err != nil {
			t.Fatalf("Log %d: %v", i, err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := scanLines(b)
	if len(lines) != 2 || !strings.Contains(lines[0], `"first"`) || !strings.Contains(lines[1], `"second"`) {
		t.Errorf("got %q, want the first record, then the second appended", lines)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o640 {
		t.Errorf("got mode %o, want 640", got)
	}
}

func TestOpenFileKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("{\"old\":true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, c, err := audit.Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := l.Log(&audit.Record{Time: at, RequestID: "new"}); err != nil {
		t.Fatalf("Log: %v", err)
	}
	c.Close()
	b, _ := os.ReadFile(path)
	if lines := scanLines(b); len(lines) != 2 || lines[0] != `{"old":true}` {
		t.Errorf("got %q, want the old line kept and one appended", lines)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %o, want the existing 600", fi.Mode().Perm())
	}
}

func TestOpenError(t *testing.T) {
	l, c, err := audit.Open(filepath.Join(t.TempDir(), "missing", "audit.jsonl"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "audit: open log: ") {
		t.Errorf("got error %v, want one starting with %q", err, "audit: open log: ")
	}
	if l != nil || c != nil {
		t.Errorf("got logger %v and closer %v, want nil", l, c)
	}
}

var idRE = regexp.MustCompile(`^([0-9a-f]{12})-[0-9a-z]+$`)

func TestIDs(t *testing.T) {
	const n = 100_000
	ids := audit.NewIDs()
	seen := make(map[string]bool, n)
	prefix := ""
	for i := range n {
		id := ids.Next()
		m := idRE.FindStringSubmatch(id)
		if m == nil {
			t.Fatalf("got id %q, want 12 hex digits, '-' and a base-36 counter", id)
		}
		if i == 0 {
			prefix = m[1]
		} else if m[1] != prefix {
			t.Fatalf("got prefix %s, want %s", m[1], prefix)
		}
		if want := prefix + "-" + strconv.FormatUint(uint64(i+1), 36); id != want {
			t.Fatalf("got id %s, want %s", id, want)
		}
		if seen[id] {
			t.Fatalf("got id %s twice", id)
		}
		seen[id] = true
	}
	other := idRE.FindStringSubmatch(audit.NewIDs().Next())
	if other == nil || other[1] == prefix {
		t.Errorf("got a second source with prefix %v, want one different from %s", other, prefix)
	}
}

// TestIDsAllocs holds the request path's cost of an id: the string alone.
func TestIDsAllocs(t *testing.T) {
	ids := audit.NewIDs()
	for range 1000 {
		ids.Next() // past the counters strconv keeps ready-made
	}
	if got := testing.AllocsPerRun(100, func() { ids.Next() }); got != 1 {
		t.Errorf("got %v allocs, want 1", got)
	}
}

func TestIDsConcurrent(t *testing.T) {
	const goroutines, each = 8, 5000
	ids := audit.NewIDs()
	var mu sync.Mutex
	seen := make(map[string]bool, goroutines*each)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := make([]string, each)
			for i := range local {
				local[i] = ids.Next()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range local {
				if seen[id] {
					t.Errorf("got id %s twice", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Errorf("got %d ids, want %d", len(seen), goroutines*each)
	}
}

func BenchmarkLog(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchmarkLog(b, audit.New(io.Discard)) })
	b.Run("chained", func(b *testing.B) { benchmarkLog(b, audit.NewChained(io.Discard, chainKey, "")) })
}

func benchmarkLog(b *testing.B, l *audit.Logger) {
	rec := audit.Record{Time: time.Now(), RequestID: "3f9a0c12be47-1a", Agent: "billing", TokenID: "task-42",
		Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges", Status: 200,
		Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 1, Duration: 41 * time.Millisecond, BytesOut: 1532}
	b.ReportAllocs()
	cpu := cputime.Process()
	for b.Loop() {
		if err := l.Log(&rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
