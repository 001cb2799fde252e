package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestRows checks that each row's ratio is keyhole's value over its
// reference (another target, or another scenario's keyhole), that a
// worst-round row takes the largest round, and that rows of scenarios
// that did not run are left out.
func TestRows(t *testing.T) {
	b := newBench(plan{}, nil, 100, nil)
	add := func(scn, tgt string, s sample) { b.record(scn, &target{name: tgt}, s, errorLog{}) }
	for _, v := range []float64{90, 100, 110} {
		add(sKeepAlive, "direct", sample{mReqPerSec: v * 100})
		add(sKeepAlive, "baseline", sample{mReqPerSec: v * 60, mCPUPerReq: v})
		add(sKeepAlive, "keyhole", sample{mReqPerSec: v * 95, mCPUPerReq: v / 2})
		add(sH2, "keyhole", sample{mCPUPerReq: v * 0.6})
	}
	for _, v := range []float64{0.5, 7, 1} {
		add(sSSE, "keyhole", sample{mAddedP99: v, mOverBaseP99: -v})
	}
	got := map[string]row{}
	for _, r := range b.rows() {
		got[r.Scenario+" "+r.Metric] = r
	}
	tests := []struct {
		row      string
		ratio    float64 // NaN: none
		keyhole  float64
		wantPass bool
		wantGoal bool
	}{
		{"keepalive_small requests/s", 0.95, 9500, true, true},
		{"keepalive_small proxy CPU µs/request", 0.5, 50, true, true},
		{"h2_multiplexed proxy CPU µs/request", 1.2, 60, false, true},
		{"sse added p99 ms, worst round", math.NaN(), 7, false, true},
		{"sse p99 − baseline's ms, worst round", math.NaN(), -0.5, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.row, func(t *testing.T) {
			r, ok := got[tc.row]
			if !ok {
				t.Fatalf("no row %q", tc.row)
			}
			if r.Values["keyhole"] == nil || math.Abs(*r.Values["keyhole"]-tc.keyhole) > 1e-9 {
				t.Errorf("keyhole value: got %v, want %v", r.Values["keyhole"], tc.keyhole)
			}
			switch {
			case math.IsNaN(tc.ratio) && r.Ratio != nil:
				t.Errorf("ratio: got %v, want none", *r.Ratio)
			case !math.IsNaN(tc.ratio) && (r.Ratio == nil || math.Abs(*r.Ratio-tc.ratio) > 1e-9):
				t.Errorf("ratio: got %v, want %v", r.Ratio, tc.ratio)
			}
			if (r.Pass != nil) != tc.wantGoal {
				t.Fatalf("pass: got %v, want a verdict %v", r.Pass, tc.wantGoal)
			}
			if r.Pass != nil && *r.Pass != tc.wantPass {
				t.Errorf("pass: got %v, want %v", *r.Pass, tc.wantPass)
			}
		})
	}
	for name := range got {
		if strings.HasPrefix(name, sLarge) || strings.HasPrefix(name, sIdle) {
			t.Errorf("row %q of a scenario that did not run", name)
		}
	}
}

// TestTableKeyholeB checks the -keyhole-b columns: absent without a
// keyhole-b, and with one its value and its ratio to keyhole.
func TestTableKeyholeB(t *testing.T) {
	for _, withB := range []bool{false, true} {
		b := newBench(plan{}, nil, 100, nil)
		b.record(sClose, &target{name: "squid"}, sample{mCPUPerReq: 800}, errorLog{})
		b.record(sClose, &target{name: "keyhole"}, sample{mCPUPerReq: 700}, errorLog{})
		if withB {
			b.record(sClose, &target{name: "keyhole-b"}, sample{mCPUPerReq: 630}, errorLog{})
		}
		var out strings.Builder
		if err := printTable(&out, b.rows(), nil); err != nil {
			t.Fatal(err)
		}
		header, _, _ := strings.Cut(out.String(), "\n")
		if got := strings.Contains(header, "keyhole-b"); got != withB {
			t.Errorf("with keyhole-b %v: header %q has its column: %v", withB, header, got)
		}
		var line string
		for l := range strings.Lines(out.String()) {
			if strings.Contains(l, "proxy CPU µs/connection") {
				line = l
			}
		}
		if withB && !strings.Contains(line, "630") || withB && !strings.Contains(line, "0.900x") {
			t.Errorf("row %q: want keyhole-b's 630 and its ratio 0.900x to keyhole", line)
		}
	}
}

// TestSquidConfigParses writes the Squid peer's configuration and has
// Squid check it (squid -k parse), so that a broken config fails here and
// not in a manual load run. Under CI=true a missing Squid fails.
func TestSquidConfigParses(t *testing.T) {
	if _, err := os.Stat(squidBin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (Debian's squid-openssl; .ci/run installs it)", squidBin)
		}
		t.Skipf("%s is missing (Debian's squid-openssl)", squidBin)
	}
	dir := t.TempDir()
	ca, err := newAuthority("test Squid CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.writeCert(filepath.Join(dir, upstreamCAFile)); err != nil {
		t.Fatal(err)
	}
	conf, err := writeSquidConfig(dir, 3128, ca, "127.0.44.9")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ssl_bump bump all", "request_header_replace Authorization Bearer ", "tls_outgoing_options cafile=", "workers 1", "cache deny all"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("squid.conf lacks %q", want)
		}
	}
	out, err := exec.Command(squidBin, "-k", "parse", "-f", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("squid -k parse: %v; output without the config's lines:\n%s", err, withoutSecret(out))
	}
	if bytes.Contains(out, []byte("FATAL")) || bytes.Contains(out, []byte("ERROR")) {
		t.Errorf("squid -k parse complained:\n%s", withoutSecret(out))
	}
}

// withoutSecret drops the lines of Squid's output that hold the bench
// secret (it echoes config lines).
func withoutSecret(out []byte) string {
	var keep []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if !strings.Contains(line, benchSecret) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func TestParseIO(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{"both", "rchar: 10\nwchar: 20\nsyscr: 7\nsyscw: 5\nread_bytes: 0\n", 12, false},
		{"one missing", "syscr: 7\n", 0, true},
		{"not a number", "syscr: x\nsyscw: 5\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIO([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestParseSched(t *testing.T) {
	got := parseSched([]byte("37714141 216011063 203\n"), []byte("Name:\tkeyhole\nvoluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t53\n"))
	if want := (sched{waitNS: 216011063, switches: 203}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := parseSched([]byte(""), []byte("")); got != (sched{}) {
		t.Errorf("empty: got %+v, want zero", got)
	}
}

// TestSSESlotsRotate: direct keeps slot 0; over as many rounds as there
// are proxies, every proxy takes every other slot once, and in each round
// the slots are a permutation.
func TestSSESlotsRotate(t *testing.T) {
	const slots = 5
	seen := map[[2]int]bool{}
	for r := range slots - 1 {
		used := map[int]bool{}
		for j := range slots {
			s := sseSlot(j, r, slots)
			if j == 0 && s != 0 {
				t.Errorf("round %d: direct in slot %d, want 0", r, s)
			}
			if used[s] {
				t.Errorf("round %d: slot %d taken twice", r, s)
			}
			used[s] = true
			seen[[2]int{j, s}] = true
		}
	}
	for j := 1; j < slots; j++ {
		for s := 1; s < slots; s++ {
			if !seen[[2]int{j, s}] {
				t.Errorf("proxy %d never took slot %d", j, s)
			}
		}
	}
}

// TestSummarize writes the -json files of two runs and checks -summarize's
// table: each run's ratio and keyhole's value, the median and range over
// the runs, goals met, and "–" where a run did not measure a row.
func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, cpu := range []float64{40, 70} {
		b := newBench(plan{}, nil, 100, nil)
		b.record(sKeepAlive, &target{name: "baseline"}, sample{mCPUPerReq: 100}, errorLog{})
		b.record(sKeepAlive, &target{name: "keyhole"}, sample{mCPUPerReq: cpu}, errorLog{})
		if i == 1 {
			b.record(sIdle, &target{name: "baseline"}, sample{mKiBPerTunnel: 45}, errorLog{})
			b.record(sIdle, &target{name: "keyhole"}, sample{mKiBPerTunnel: 32}, errorLog{})
		}
		p := filepath.Join(dir, fmt.Sprintf("run%d.json", i+1))
		if err := writeJSON(p, results{Rows: b.rows()}); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-summarize", strings.Join(paths, ",")}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"| scenario | metric | goal | run 1 | run 2 | median | range | goal met |",
		"| keepalive_small | proxy CPU µs/request | ratio ≤ 0.60x | 0.400x (40.0) | 0.700x (70.0) | **0.550x** | 0.400x–0.700x | 1 of 2 |",
		"| idle_tunnels | RSS KiB per idle tunnel | keyhole ≤ 40 | – | 32.0 | **32.0** | 32.0–32.0 | 1 of 1 |",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w+"\n") {
			t.Errorf("table lacks the line\n%s\ngot:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "large_download") {
		t.Errorf("table has a row no run measured:\n%s", out.String())
	}
}

// warm leaves a connection per stream in the target's pool, and a pool
// that has them opens no more.
func TestWarmFillsThePool(t *testing.T) {
	ca, err := newAuthority("loadtest test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.leaf(upstreamHost)
	if err != nil {
		t.Fatal(err)
	}
	up, err := startUpstream(leaf)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	direct := newTarget("direct", nil, ca.pool(), up.addr, nil)
	defer direct.keepAlive.CloseIdleConnections()
	const streams = 8
	for i := range 2 {
		if errs := direct.warm(context.Background(), streams); errs.n > 0 {
			t.Fatalf("warm %d: %d streams failed; first: %v", i+1, errs.n, errs.first)
		}
		if got := up.Conns(); got != streams {
			t.Fatalf("upstream connections after warm %d: got %d, want %d", i+1, got, streams)
		}
	}
	if got := direct.requests.Load(); got != 2*streams {
		t.Fatalf("requests counted: got %d, want %d", got, 2*streams)
	}
}
