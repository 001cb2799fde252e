package main

import (
	"bytes"
	"math"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{
			name: "plain",
			in:   "4242 (keyhole) S 1 4242 4242 0 -1 4194560 1523 0 0 0 150 37 0 0 20 0 9 0 12345 1000000 2000 18446744073709551615",
			want: 187,
		},
		{
			name: "command with spaces and parentheses",
			in:   "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1 1",
			want: 11,
		},
		{name: "no parenthesis", in: "7 keyhole S 1", wantErr: true},
		{name: "truncated", in: "7 (keyhole) S 1 7 7 0 -1 0 0 0 0 0 5", wantErr: true},
		{name: "not a number", in: "7 (k) S 1 7 7 0 -1 0 0 0 0 0 x 6 0", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d ticks, want %d", got, tc.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memory
		wantErr bool
	}{
		{
			name: "both",
			in:   "Name:\tkeyhole\nVmPeak:\t 1254324 kB\nVmHWM:\t   27000 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n",
			want: memory{RSSKiB: 20480, PeakKiB: 27000},
		},
		{name: "rss missing", in: "VmHWM:\t 1 kB\n", wantErr: true},
		{name: "other unit", in: "VmHWM:\t 1 MB\nVmRSS:\t 1 kB\n", wantErr: true},
		{name: "not a number", in: "VmHWM:\t x kB\nVmRSS:\t 1 kB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", []time.Duration{7}, 99, 7},
		{"p50 of 100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 100", hundred, 100, 100 * time.Millisecond},
		{"p99 of 3", []time.Duration{1, 2, 3}, 99, 3},
		{"p50 of 4", []time.Duration{1, 2, 3, 4}, 50, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one", []float64{5}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil): got %v, want NaN", got)
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Errorf("median sorted its argument: got %v, want [3 1 2]", in)
	}
}

// TestBodiesHoldNoSecret checks that scrubbing has nothing to replace, so
// that keyhole's responses are as long as the upstream's.
func TestBodiesHoldNoSecret(t *testing.T) {
	for _, n := range []int{smallSize, largeSize} {
		b := body(n)
		if len(b) != n {
			t.Errorf("body(%d): got %d bytes, want %d", n, len(b), n)
		}
		if i := bytes.Index(b, []byte(benchSecret)); i >= 0 {
			t.Errorf("body(%d) holds the secret BENCH at offset %d", n, i)
		}
	}
}
