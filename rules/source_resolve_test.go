package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/secret"
)

// fakeKind reads env: sources from a table instead of the environment,
// counting reads and the most at once.
type fakeKind struct {
	mu      sync.Mutex
	values  map[string]fakeValue // by variable name
	reads   map[string]int
	running atomic.Int32
	most    atomic.Int32
	block   bool                     // wait for ctx to end
	slow    map[string]time.Duration // reads of a name after its first take this long
}

type fakeValue struct {
	v   string
	ttl time.Duration
	err error
}

func (k *fakeKind) set(name string, v fakeValue) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.values == nil {
		k.values = map[string]fakeValue{}
	}
	k.values[name] = v
}

func (k *fakeKind) count(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reads[name]
}

func (k *fakeKind) Read(ctx context.Context, src Source) (secret.Value, time.Time, error) {
	n := k.running.Add(1)
	defer k.running.Add(-1)
	for {
		m := k.most.Load()
		if n <= m || k.most.CompareAndSwap(m, n) {
			break
		}
	}
	_, name, _ := strings.Cut(src.String(), ":")
	name = filepath.Base(name) // file: sources by their file's name
	k.mu.Lock()
	if k.reads == nil {
		k.reads = map[string]int{}
	}
	k.reads[name]++
	fv, ok := k.values[name]
	block := k.block
	var slow time.Duration
	if k.reads[name] > 1 {
		slow = k.slow[name]
	}
	k.mu.Unlock()
	time.Sleep(slow)
	if block {
		<-ctx.Done()
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, ctx.Err())
	}
	time.Sleep(5 * time.Millisecond) // long enough for reads to overlap
	if !ok {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: not in the table", src)
	}
	if fv.err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, fv.err)
	}
	var exp time.Time
	if fv.ttl != 0 {
		exp = time.Now().Add(fv.ttl)
	}
	return secret.FromString(fv.v), exp, nil
}

func manySecrets(n int) string {
	var b strings.Builder
	b.WriteString("secrets:\n")
	for i := range n {
		fmt.Fprintf(&b, "  S%d:\n    source: env:V%d\n    hosts: [s%d.example]\n", i, i, i)
	}
	return b.String()
}

func TestResolveParallelBound(t *testing.T) {
	k := &fakeKind{}
	for i := range 20 {
		k.set(fmt.Sprintf("V%d", i), fakeValue{v: fmt.Sprintf("value-%02d-abcdefgh", i)})
	}
	ld := &Loader{Kinds: map[string]Kind{"env": k}, Parallel: 3}
	s, err := ld.LoadData(context.Background(), "k.yaml", []byte(manySecrets(20)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.most.Load(); got > 3 || got < 2 {
		t.Errorf("got %d reads at once, want 2 or 3 (Parallel 3)", got)
	}
	for i := range 20 {
		if _, err := s.Secrets[fmt.Sprintf("S%d", i)].Value(); err != nil {
			t.Errorf("S%d: %v", i, err)
		}
	}
}

func TestResolveTimeout(t *testing.T) {
	k := &fakeKind{block: true}
	ld := &Loader{Kinds: map[string]Kind{"env": k}, Timeout: 200 * time.Millisecond}
	start := time.Now()
	s, err := ld.LoadData(context.Background(), "k.yaml", []byte(manySecrets(3)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("resolve took %v, want about the 200ms timeout", d)
	}
	if _, err := s.Secrets["S0"].Value(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the deadline", err)
	}
	if len(s.Warnings) != 3 {
		t.Errorf("got %d warnings, want 3", len(s.Warnings))
	}
}

func TestResolveSharesOneRead(t *testing.T) {
	k := &fakeKind{}
	k.set("SHARED", fakeValue{v: "shared-value-0123"})
	data := "secrets:\n  A:\n    source: env:SHARED\n    hosts: [a.example]\nagents:\n  bot:\n    token: env:SHARED\n    secrets: [A]\n"
	ld := &Loader{Kinds: map[string]Kind{"env": k}}
	if _, err := ld.LoadData(context.Background(), "k.yaml", []byte(data), nil); err != nil {
		t.Fatal(err)
	}
	if got := k.count("SHARED"); got != 1 {
		t.Errorf("got %d reads, want 1", got)
	}
}

func TestRefresh(t *testing.T) {
	k := &fakeKind{}
	k.set("V0", fakeValue{v: "short-lived-one-0", ttl: 3 * time.Second})
	k.set("V1", fakeValue{v: "forever-value-000"})
	ld := &Loader{Kinds: map[string]Kind{"env": k}}
	s, err := ld.LoadData(context.Background(), "k.yaml", []byte(manySecrets(2)), nil)
	if err != nil {
		t.Fatal(err)
	}
	at, ok := s.RefreshAt()
	if !ok || at.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("got refresh at %v (%v), want within 2s", at, ok)
	}
	value := func(s *Set, name string) string {
		v, err := s.Secrets[name].Value()
		if err != nil {
			return "unavailable"
		}
		return v.Reveal()
	}

	// Nothing due: nothing read.
	same := ld.Refresh(context.Background(), s)
	if k.count("V0") != 1 || k.count("V1") != 1 || value(same, "S0") != "short-lived-one-0" {
		t.Errorf("a refresh with nothing due read %d and %d times", k.count("V0"), k.count("V1"))
	}
	// A kind named: its sources are read again.
	k.set("V0", fakeValue{v: "short-lived-two-0", ttl: 3 * time.Second})
	s = ld.Refresh(context.Background(), s, "env")
	if value(s, "S0") != "short-lived-two-0" || k.count("V1") != 2 {
		t.Errorf("got %d reads of V1, want 2", k.count("V1"))
	}
	// The source fails: the last good value is served until it expires,
	// then the secret is unavailable; retries back off.
	k.set("V0", fakeValue{err: errors.New("down")})
	s = ld.Refresh(context.Background(), s, "env")
	if value(s, "S0") != "short-lived-two-0" {
		t.Errorf("after a failed read: got %s, want the last good value", value(s, "S0"))
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "serving the last good value until") {
		t.Errorf("got warnings %q, want one about the last good value", s.Warnings)
	}
	rd := s.readings["env:V0"]
	if rd.failures != 1 || rd.next.After(rd.expires) {
		t.Errorf("got %d failures, next %v, expires %v", rd.failures, rd.next, rd.expires)
	}
	deadline := time.Now().Add(10 * time.Second)
	for value(s, "S0") != "unavailable" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if value(s, "S0") != "unavailable" {
		t.Fatal("an expired value is still served")
	}
	s = ld.Refresh(context.Background(), s, "env")
	s = ld.Refresh(context.Background(), s, "env")
	if got := s.readings["env:V0"]; got.failures != 3 || got.usable() || got.next.Sub(time.Now()) < 3*time.Second {
		t.Errorf("got %d failures, usable %v, retry in %v; want 3, false, about 4s", got.failures, got.usable(), time.Until(got.next))
	}
	// Gone: the value is dropped at once.
	k.set("V1", fakeValue{err: ErrGone})
	s = ld.Refresh(context.Background(), s, "env")
	if value(s, "S1") != "unavailable" {
		t.Error("a deleted value is still served")
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := backoff(n); got != want {
			t.Errorf("backoff(%d): got %v, want %v", n, got, want)
		}
	}
}

// TestWatcherRefresh checks that a Watcher reads a value again before it
// expires, and every source of a kind that reports a change, without a
// change to any file.
func TestWatcherRefresh(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/keyhole.yaml"
	if err := os.WriteFile(path, []byte(manySecrets(2)), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &fakeKind{}
	k.set("V0", fakeValue{v: "short-lived-value-0", ttl: 1500 * time.Millisecond})
	k.set("V1", fakeValue{v: "forever-value-00001"})
	ld := &Loader{Kinds: map[string]Kind{"env": k}}
	set, err := ld.Load(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	refreshed := make(chan *Set, 10)
	changes := make(chan string)
	w := &Watcher{Path: path, Interval: 20 * time.Millisecond, Loader: ld, Changes: changes,
		OnRefresh: func(s *Set) { refreshed <- s }, OnLoad: func(*Set) { t.Error("a refresh reloaded the rules") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, set, nil); close(done) }()
	defer func() { cancel(); <-done }()

	select {
	case s := <-refreshed:
		if _, err := s.Secrets["S0"].Value(); err != nil {
			t.Errorf("after the refresh: %v", err)
		}
		if k.count("V0") < 2 || k.count("V1") != 1 {
			t.Errorf("got %d and %d reads, want V0 again and V1 once", k.count("V0"), k.count("V1"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh before the value expired")
	}
	k.set("V1", fakeValue{v: "forever-value-00002"})
	changes <- "env"
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-refreshed:
			if v, err := s.Secrets["S1"].Value(); err == nil && v.Equal("forever-value-00002") {
				return
			}
		case <-deadline:
			t.Fatal("a change of the kind was not read")
		}
	}
}

// TestWatcherSlowRefresh checks that a value whose refresh is slow (a
// program that hangs) does not hold up a kind's change, and that the slow
// refresh, when it ends, keeps the change.
func TestWatcherSlowRefresh(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/keyhole.yaml"
	data := "secrets:\n  SLOW:\n    source: env:V0\n    hosts: [a.example]\n  CHANGED:\n    source: file:F1\n    hosts: [b.example]\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &fakeKind{slow: map[string]time.Duration{"V0": 3 * time.Second}}
	k.set("V0", fakeValue{v: "slow-value-000001", ttl: 1200 * time.Millisecond})
	k.set("F1", fakeValue{v: "changed-value-0001"})
	ld := &Loader{Kinds: map[string]Kind{"env": k, "file": k}}
	set, err := ld.Load(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	refreshed := make(chan *Set, 10)
	changes := make(chan string)
	w := &Watcher{Path: path, Interval: 20 * time.Millisecond, Loader: ld, Changes: changes,
		OnRefresh: func(s *Set) { refreshed <- s }, OnLoad: func(*Set) { t.Error("a refresh reloaded the rules") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, set, nil); close(done) }()
	defer func() { cancel(); <-done }()

	// Wait until the slow refresh of V0 has begun.
	deadline := time.Now().Add(10 * time.Second)
	for k.count("V0") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	k.set("F1", fakeValue{v: "changed-value-0002"})
	sent := time.Now()
	changes <- "file"
	value := func(s *Set, name string) string {
		v, err := s.Secrets[name].Value()
		if err != nil {
			return "unavailable"
		}
		return v.Reveal()
	}
	select {
	case s := <-refreshed:
		if d := time.Since(sent); d > 2*time.Second || value(s, "CHANGED") != "changed-value-0002" {
			t.Fatalf("the change arrived after %v with %s, want at once with the new value", d, value(s, "CHANGED"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh for the change")
	}
	select {
	case s := <-refreshed:
		if value(s, "CHANGED") != "changed-value-0002" || value(s, "SLOW") != "slow-value-000001" {
			t.Errorf("after the slow refresh: got %s and %s", value(s, "CHANGED"), value(s, "SLOW"))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow refresh never ended")
	}
}
