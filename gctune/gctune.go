// Package gctune sets the garbage collector's target by load. A proxy
// holding many idle tunnels wants a low target, so that little garbage
// sits in memory next to them; a proxy relaying thousands of requests a
// second wants a high one, so that it collects half as often. A Tuner
// watches the request rate and moves between the two, and when load stops
// it collects at once and returns the freed memory to the system.
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
	// which keeps an idle proxy small, and 100, Go's own default).
	Low, High int
	// Interval is how often the rate is measured (default 250 ms).
	Interval time.Duration

	// setPercent and release are debug.SetGCPercent and
	// debug.FreeOSMemory; tests replace them.
	setPercent func(int) int
	release    func()

	last  uint64
	high  bool
	quiet int // intervals in a row under Busy/4 while high
}

// Defaults of the Tuner's fields.
const (
	DefaultBusy     = 1000
	DefaultLow      = 50
	DefaultHigh     = 100
	DefaultInterval = 250 * time.Millisecond
)

// Run sets the target to Low and adjusts it every Interval until ctx ends.
func (t *Tuner) Run(ctx context.Context) {
	t.defaults()
	if t.setPercent == nil {
		t.setPercent, t.release = debug.SetGCPercent, debug.FreeOSMemory
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
			t.setPercent(t.Low)
			// The heap grew to the high target's size: collect now and
			// give the memory back, rather than keep it until enough is
			// allocated to start a collection.
			t.release()
		}
	default:
		t.quiet = 0
	}
}
