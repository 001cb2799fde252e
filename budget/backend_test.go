package budget

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// step is one request of a backend test: after advancing the clock by
// advance, a request under the windows named by wins; want is the index
// of the refusing window (-1: admitted) and retry its RetryAfter.
type step struct {
	advance time.Duration
	wins    []Window
	want    int
	retry   time.Duration
}

var (
	three  = Window{Key: "k:three", Requests: 3, Per: 10 * time.Second}
	one    = Window{Key: "k:one", Requests: 1, Per: time.Minute}
	five   = Window{Key: "k:five", Requests: 5, Per: time.Minute}
	lower  = Window{Key: "k:three", Requests: 1, Per: 10 * time.Second} // three after a reload that lowered it
	hourly = Window{Key: "k:hourly", Requests: 2, Per: time.Hour}
)

func ws(w ...Window) []Window { return w }

// backendTests are the sliding-window cases every backend must pass.
var backendTests = []struct {
	name  string
	steps []step
}{
	{"a window admits exactly its requests, then frees as entries age", []step{
		{0, ws(three), -1, 0},
		{time.Second, ws(three), -1, 0},
		{time.Second, ws(three), -1, 0},
		{0, ws(three), 0, 8 * time.Second},
		{7*time.Second + 999*time.Millisecond, ws(three), 0, time.Millisecond},
		{time.Millisecond, ws(three), -1, 0}, // the entry at 0 is exactly 10 s old: out
		{0, ws(three), 0, time.Second},
		{time.Second, ws(three), -1, 0},
		{0, ws(three), 0, time.Second},
	}},
	{"sliding, not fixed buckets: a burst at the end of one hour counts in the next", []step{
		{59 * time.Minute, ws(hourly), -1, 0},
		{0, ws(hourly), -1, 0},
		{2 * time.Minute, ws(hourly), 0, 58 * time.Minute},
		{58*time.Minute - time.Millisecond, ws(hourly), 0, time.Millisecond},
		{time.Millisecond, ws(hourly), -1, 0},
	}},
	{"all or nothing: a refusal by one window consumes none", []step{
		{0, ws(five, one), -1, 0},
		{0, ws(five, one), 1, time.Minute},
		{0, ws(five, one), 1, time.Minute},
		{0, ws(five), -1, 0}, // five holds 2: the refused requests did not count
		{0, ws(five), -1, 0},
		{0, ws(five), -1, 0},
		{0, ws(five), -1, 0},
		{0, ws(five), 0, time.Minute},
	}},
	{"the first full window is named", []step{
		{0, ws(one), -1, 0},
		{0, ws(five, one), 1, time.Minute},
		{0, ws(one, five), 0, time.Minute},
	}},
	{"a lowered limit waits for enough entries to leave", []step{
		{0, ws(three), -1, 0},
		{time.Second, ws(three), -1, 0},
		{time.Second, ws(three), -1, 0},
		{0, ws(lower), 0, 10 * time.Second}, // 3 entries, 1 allowed: the youngest (at 2 s) must go
		{10 * time.Second, ws(lower), -1, 0},
	}},
}

// runBackendTests runs backendTests against a backend from newBackend,
// each case with a fresh backend and clock.
func runBackendTests(t *testing.T, newBackend func(t *testing.T, now func() time.Time) Backend) {
	for _, tc := range backendTests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			b := newBackend(t, clock.Now)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				v, err := b.Take(context.Background(), s.wins)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if v.Refused != s.want || (s.want >= 0 && v.RetryAfter != s.retry) {
					t.Fatalf("step %d: got refused %d retry %v, want %d retry %v", i, v.Refused, v.RetryAfter, s.want, s.retry)
				}
			}
		})
	}
}

// runConcurrent sends n concurrent requests under a window of 100 per hour
// and checks that exactly 100 are admitted.
func runConcurrent(t *testing.T, b Backend, n int) {
	w := Window{Key: "k:concurrent", Requests: 100, Per: time.Hour}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			v, err := b.Take(context.Background(), ws(w))
			switch {
			case err != nil:
				t.Error(err)
			case v.Refused < 0:
				admitted.Add(1)
			default:
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 100 || refused.Load() != int64(n-100) {
		t.Fatalf("got %d admitted and %d refused, want 100 and %d", admitted.Load(), refused.Load(), n-100)
	}
}

func TestMemory(t *testing.T) {
	runBackendTests(t, func(t *testing.T, now func() time.Time) Backend { return NewMemory(now) })
}

func TestMemoryConcurrent(t *testing.T) { runConcurrent(t, NewMemory(nil), 300) }

func TestMemoryBounded(t *testing.T) {
	clock := newFakeClock()
	m := NewMemory(clock.Now)
	w := Window{Key: "k", Requests: 10, Per: time.Hour}
	for range 1000 {
		_, _ = m.Take(context.Background(), ws(w))
		clock.Advance(time.Second)
	}
	if r := m.logs["k"]; len(r.buf) > 10 || r.len > 10 {
		t.Fatalf("got a ring of %d holding %d, want at most 10", len(r.buf), r.len)
	}
	m.Retain(map[string]bool{"other": true})
	if len(m.logs) != 0 {
		t.Fatalf("got %d windows after Retain, want 0", len(m.logs))
	}
}
