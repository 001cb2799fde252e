package budget

import (
	"context"
	"sync"
	"time"
)

// Memory keeps windows in the process: the default backend of a single
// replica. Each window is a ring of the times it admitted a request,
// holding at most the window's Requests entries. It is safe for
// concurrent use; one mutex makes each Take atomic across its windows.
type Memory struct {
	now   func() time.Time
	epoch time.Time

	mu   sync.Mutex
	logs map[string]*ring
}

// NewMemory returns an empty Memory whose clock is now; nil means
// time.Now. Times are measured from its creation on now's clock (with
// time.Now, the monotonic one, so that a step of the wall clock neither
// frees nor fills a window).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, epoch: now(), logs: map[string]*ring{}}
}

// Take implements Backend.
func (m *Memory) Take(_ context.Context, ws []Window) (Verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().Sub(m.epoch)
	for i, w := range ws {
		r := m.logs[w.Key]
		if r == nil {
			continue
		}
		r.expire(now - w.Per)
		if r.len >= w.Requests {
			// The entry that must leave before one more fits: the oldest
			// when the window is exactly full, a younger one when a
			// reload lowered Requests.
			return Verdict{Refused: i, RetryAfter: r.at(r.len-w.Requests) + w.Per - now}, nil
		}
	}
	for _, w := range ws {
		r := m.logs[w.Key]
		if r == nil {
			r = &ring{}
			m.logs[w.Key] = r
		}
		r.push(now, w.Requests)
	}
	return Verdict{Refused: -1}, nil
}

// Retain drops the windows whose key is not in keep.
func (m *Memory) Retain(keep map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.logs {
		if !keep[k] {
			delete(m.logs, k)
		}
	}
}

// ring is a window's log: admitted times, oldest first, as offsets from
// the Memory's epoch.
type ring struct {
	buf  []time.Duration
	head int // index of the oldest entry
	len  int
}

// at returns the i-th oldest entry.
func (r *ring) at(i int) time.Duration { return r.buf[(r.head+i)%len(r.buf)] }

// expire drops the entries at or before cutoff: a window of length Per
// at now holds the times in (now-Per, now].
func (r *ring) expire(cutoff time.Duration) {
	for r.len > 0 && r.buf[r.head] <= cutoff {
		r.head = (r.head + 1) % len(r.buf)
		r.len--
	}
}

// push appends t, growing the ring up to limit entries; a ring that is
// full already (limit was lowered) drops its oldest entry.
func (r *ring) push(t time.Duration, limit int) {
	if r.len == len(r.buf) {
		if len(r.buf) >= limit {
			r.head = (r.head + 1) % len(r.buf)
			r.len--
		} else {
			r.grow(min(max(2*len(r.buf), 8), limit))
		}
	}
	r.buf[(r.head+r.len)%len(r.buf)] = t
	r.len++
}

func (r *ring) grow(size int) {
	buf := make([]time.Duration, size)
	for i := 0; i < r.len; i++ {
		buf[i] = r.at(i)
	}
	r.buf, r.head = buf, 0
}

var _ Backend = (*Memory)(nil)
