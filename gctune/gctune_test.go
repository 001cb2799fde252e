package gctune

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorder is a Tuner whose GC calls are recorded, driven by a request
// count the test sets.
func recorder() (*Tuner, *uint64, *[]string) {
	var n uint64
	var calls []string
	t := &Tuner{
		Requests: func() uint64 { return n },
		Busy:     1000, Low: 50, High: 100,
		Interval: 100 * time.Millisecond,
		setPercent: func(p int) int {
			calls = append(calls, fmt.Sprintf("gogc=%d", p))
			return 0
		},
	}
	return t, &n, &calls
}

func TestStep(t *testing.T) {
	cases := []struct {
		name string
		// rates, in requests per second, one per interval
		rates []uint64
		want  string
	}{
		{"quiet stays low", []uint64{0, 10, 200, 0}, ""},
		{"load raises the target once", []uint64{5000, 20000, 1000}, "gogc=100"},
		{"falling under a quarter of busy for two intervals lowers it", []uint64{5000, 100, 0, 0}, "gogc=100 gogc=50"},
		{"one quiet interval is not enough", []uint64{5000, 0, 5000, 0, 2000}, "gogc=100"},
		{"between a quarter and busy holds the target", []uint64{5000, 600, 600, 600}, "gogc=100"},
		{"load, pause, load", []uint64{5000, 0, 0, 5000, 0, 0}, "gogc=100 gogc=50 gogc=100 gogc=50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tu, n, calls := recorder()
			for _, r := range tc.rates {
				*n += r / 10 // per interval of 100 ms
				tu.step()
			}
			if got := strings.Join(*calls, " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRunStartsLowAndStops(t *testing.T) {
	tu, _, calls := recorder()
	tu.Interval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.Run(ctx); close(done) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when its context ended")
	}
	if !slices.Equal(*calls, []string{"gogc=50"}) {
		t.Errorf("got %q, want the low target and nothing else with no requests", *calls)
	}
}

func TestZeroFieldsMeanDefaults(t *testing.T) {
	tu := &Tuner{Requests: func() uint64 { return 0 }}
	tu.defaults()
	if tu.Busy != DefaultBusy || tu.Low != DefaultLow || tu.High != DefaultHigh || tu.Interval != DefaultInterval {
		t.Errorf("got busy %v, low %d, high %d, interval %v; want the defaults", tu.Busy, tu.Low, tu.High, tu.Interval)
	}
}

// TestQuietForcesNoCollection: when load stops, the Tuner lowers the target
// and nothing else. A forced collection (runtime.GC, debug.FreeOSMemory)
// there stalled the streams that began right after a burst.
func TestQuietForcesNoCollection(t *testing.T) {
	tu, n, calls := recorder()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, r := range []uint64{5000, 5000, 0, 0, 0, 0} {
		*n += r / 10
		tu.step()
	}
	runtime.ReadMemStats(&after)
	if got := strings.Join(*calls, " "); got != "gogc=100 gogc=50" {
		t.Errorf("calls: got %q, want %q", got, "gogc=100 gogc=50")
	}
	if forced := after.NumForcedGC - before.NumForcedGC; forced != 0 {
		t.Errorf("forced collections: got %d, want 0", forced)
	}
}
