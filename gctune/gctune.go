// Package gctune sets the garbage collector's target by load. A proxy
// holding many idle tunnels wants a low target, so that little garbage
// sits in memory next to them; a proxy relaying thousands of requests a
// second wants a high one, so that it collects a quarter as often. A Tuner
// watches the request rate and moves between the two.
//
// When load stops, the Tuner only lowers the target. It does not force a
// collection or return memory with debug.FreeOSMemory: that is a full
// blocking collection followed by a scavenge of every free page, and it
// landed just as the next burst of work began (streams opened right after
// a burst of 1 MiB downloads saw their p99 delay jump from under 1 ms to
// several); the pages released then had to be faulted back in. The lower
// target starts the next collection sooner, and the runtime's background
// scavenger returns the freed memory to the system gradually, at a bounded
// share of one CPU.
package gctune

import (
	"context"
	"runtime/debug"
	"time"
)

// Tuner moves the collector's target (GOGC) between Low and High by the
// rate of Requests. Only Requests must be set; the zero value of every
// other field means its default.
type Tuner struct {
	// Requests returns how many requests have begun so far.
	Requests func() uint64
	// Busy is the rate, in requests per second, at which the target
	// rises to High (default 1000). It falls back to Low once the rate
	// has stayed under a quarter of Busy for two intervals in a row.
	Busy float64
	// Low and High are the targets, as GOGC percentages (defaults 50,
	// which keeps an idle proxy small, and 200: under load the collector's
	// marking costs half what it does at Go's own default of 100, for a
	// heap that may grow to three times what is live instead of two).
	Low, High int
	// Interval is how often the rate is measured (default 250 ms).
	Interval time.Duration

	// setPercent is debug.SetGCPercent; tests replace it.
	setPercent func(int) int

	last  uint64
	high  bool
	quiet int // intervals in a row under Busy/4 while high
}

// Defaults of the Tuner's fields.
const (
	DefaultBusy     = 1000
	DefaultLow      = 50
	DefaultHigh     = 200
	DefaultInterval = 250 * time.Millisecond
)

// Run sets the target to Low and adjusts it every Interval until ctx ends.
func (t *Tuner) Run(ctx context.Context) {
	t.defaults()
	if t.setPercent == nil {
		t.setPercent = debug.SetGCPercent
	}
	t.setPercent(t.Low)
	t.last = t.Requests()
	tick := time.NewTicker(t.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.step()
		}
	}
}

// defaults fills in the fields left zero.
func (t *Tuner) defaults() {
	if t.Busy == 0 {
		t.Busy = DefaultBusy
	}
	if t.Low == 0 {
		t.Low = DefaultLow
	}
	if t.High == 0 {
		t.High = DefaultHigh
	}
	if t.Interval == 0 {
		t.Interval = DefaultInterval
	}
}

// step measures the rate over the last interval and moves the target.
func (t *Tuner) step() {
	n := t.Requests()
	rate := float64(n-t.last) / t.Interval.Seconds()
	t.last = n
	switch {
	case rate >= t.Busy:
		t.quiet = 0
		if !t.high {
			t.high = true
			t.setPercent(t.High)
		}
	case t.high && rate < t.Busy/4:
		if t.quiet++; t.quiet >= 2 {
			t.high, t.quiet = false, 0
			// No forced collection and no FreeOSMemory here (see the
			// package doc): the next collection comes at the lower
			// target, and the scavenger returns memory in the background.
			t.setPercent(t.Low)
		}
	default:
		t.quiet = 0
	}
}
