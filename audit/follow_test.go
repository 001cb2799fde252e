package audit_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
)

// followPoll is the Follower's poll interval in these tests.
const followPoll = 5 * time.Millisecond

// follower runs a Follower on a file in the background and hands back the
// request ids it delivers.
type follower struct {
	fw   *audit.Follower
	ids  chan string
	done chan error
	stop context.CancelFunc
}

func startFollower(t *testing.T, path string, fromStart bool, backlog int) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{
		fw:   &audit.Follower{Poll: followPoll, Backlog: backlog},
		ids:  make(chan string, 100),
		done: make(chan error, 1),
		stop: cancel,
	}
	go func() {
		f.done <- f.fw.Follow(ctx, path, fromStart, func(e audit.Entry) error {
			f.ids <- e.RequestID
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-f.done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	})
	return f
}

// expect waits for exactly the ids want, in order.
func (f *follower) expect(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case id := <-f.ids:
			got = append(got, id)
		case err := <-f.done:
			t.Fatalf("Follow returned %v; got %v, want %v", err, got, want)
		case <-timeout:
			t.Fatalf("timed out: got %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// expectNothing checks that nothing is delivered for a few polls.
func (f *follower) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case id := <-f.ids:
		t.Fatalf("got %q, want nothing yet", id)
	case <-time.After(10 * followPoll):
	}
}

// followLines is one log line per id.
func followLines(t *testing.T, ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(readerLine(t, &audit.Record{Time: readerT0, RequestID: id, Decision: audit.Allow}) + "\n")
	}
	return b.String()
}

func followAppend(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestFollowStart(t *testing.T) {
	tests := []struct {
		name      string
		existing  string
		fromStart bool
		backlog   int
		want      []string
	}{
		{"from start", "a b c", true, 0, []string{"a", "b", "c", "new"}},
		{"from end", "a b c", false, 0, []string{"new"}},
		{"backlog", "a b c", false, 2, []string{"b", "c", "new"}},
		{"backlog longer than file", "a b c", false, 10, []string{"a", "b", "c", "new"}},
		{"empty file", "", false, 10, []string{"new"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			followAppend(t, path, followLines(t, strings.Fields(tc.existing)...))
			f := startFollower(t, path, tc.fromStart, tc.backlog)
			if tc.fromStart || tc.backlog > 0 {
				f.expect(t, tc.want[:len(tc.want)-1]...)
			}
			f.expectNothing(t)
			followAppend(t, path, followLines(t, "new"))
			f.expect(t, "new")
		})
	}
}

// TestFollowBacklogLongFile reads the backlog of a file longer than the
// block tailOffset reads backwards.
func TestFollowBacklogLongFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = "r" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
	}
	followAppend(t, path, followLines(t, ids...))
	f := startFollower(t, path, false, 3)
	f.expect(t, ids[len(ids)-3:]...)
}

func TestFollowPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	followAppend(t, path, followLines(t, "a"))
	line := followLines(t, "b")
	followAppend(t, path, line[:10]) // a line being written when Follow starts
	f := startFollower(t, path, false, 0)
	followAppend(t, path, line[10:30])
	f.expectNothing(t)
	followAppend(t, path, line[30:])
	f.expect(t, "b")
	if got := f.fw.Skipped(); got != 0 {
		t.Errorf("skipped: got %v, want %v", got, 0)
	}
}

func TestFollowSkipsMalformed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	followAppend(t, path, "")
	f := startFollower(t, path, true, 0)
	long := `{"time":"2026-11-26T10:30:00Z","path":"/` + strings.Repeat("a", audit.MaxLine) + "\"}\n"
	followAppend(t, path, followLines(t, "a")+"garbage\n"+long+followLines(t, "b"))
	f.expect(t, "a", "b")
	if got := f.fw.Skipped(); got != 2 {
		t.Errorf("skipped: got %v, want %v", got, 2)
	}
}

func TestFollowTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	followAppend(t, path, followLines(t, "a", "b"))
	f := startFollower(t, path, true, 0)
	f.expect(t, "a", "b")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * followPoll) // let Follow see the file shrink
	followAppend(t, path, followLines(t, "c"))
	f.expect(t, "c")
}

func TestFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	followAppend(t, path, followLines(t, "a"))
	// The writer keeps the old file open across the rename, as a proxy
	// does until it reopens its log.
	old, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	f := startFollower(t, path, true, 0)
	f.expect(t, "a")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * followPoll) // a gap with no file at path
	// Written to the old file after the rename but before Follow moves on,
	// and half a line that the writer never finished.
	if _, err := old.WriteString(followLines(t, "b") + `{"time":"2026-`); err != nil {
		t.Fatal(err)
	}
	followAppend(t, path, followLines(t, "c", "d"))
	f.expect(t, "b", "c", "d")
	followAppend(t, path, followLines(t, "e"))
	f.expect(t, "e")
	if got := f.fw.Skipped(); got != 1 {
		t.Errorf("skipped: got %v, want %v (the unfinished line)", got, 1)
	}
}

// TestFollowRepeatedRotation rotates while lines are being written, and
// checks that no line written at the path is lost or repeated.
func TestFollowRepeatedRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	followAppend(t, path, "")
	f := startFollower(t, path, true, 0)
	for round := range 5 {
		id := string(rune('a' + round))
		followAppend(t, path, followLines(t, id+"1", id+"2"))
		f.expect(t, id+"1", id+"2")
		if err := os.Rename(path, filepath.Join(dir, "old-"+id)); err != nil {
			t.Fatal(err)
		}
		followAppend(t, path, "")
	}
	f.expectNothing(t)
}

func TestFollowCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	followAppend(t, path, followLines(t, "a", "b"))
	stop := errors.New("stop")
	err := audit.Follow(t.Context(), path, true, func(audit.Entry) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("got %v, want %v", err, stop)
	}
}

func TestFollowMissingFile(t *testing.T) {
	err := audit.Follow(t.Context(), filepath.Join(t.TempDir(), "nope"), true, func(audit.Entry) error { return nil })
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want %v", err, os.ErrNotExist)
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	followAppend(t, path, "")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- (&audit.Follower{Poll: time.Hour}).Follow(ctx, path, false, func(audit.Entry) error { return nil })
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want %v", err, nil)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after its context was cancelled")
	}
}
