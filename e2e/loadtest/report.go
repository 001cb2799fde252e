package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"
	"time"
)

// goal is a pass/fail test on a row; a zero goal only informs.
type goal struct {
	text  string
	check func(base, kh float64) bool
}

func ratioAtMost(x float64) goal {
	return goal{fmt.Sprintf("ratio ≤ %.2fx", x), func(b, k float64) bool { return k/b <= x }}
}

func ratioAtLeast(x float64) goal {
	return goal{fmt.Sprintf("ratio ≥ %.2fx", x), func(b, k float64) bool { return k/b >= x }}
}

func keyholeBelow(x float64) goal {
	return goal{fmt.Sprintf("keyhole < %g", x), func(_, k float64) bool { return k < x }}
}

func keyholeAtMost(x float64) goal {
	return goal{fmt.Sprintf("keyhole ≤ %g", x), func(_, k float64) bool { return k <= x }}
}

// rowDef is one line of the table: the median over rounds of one metric of
// one scenario, for each proxy.
type rowDef struct {
	scn, key, label string
	goal            goal
}

// rowDefs lists the table's rows. The goals are the issue's: keep-alive
// CPU/request ≤ 1.15x and req/s ≥ 0.9x the baseline, new connections/s ≥
// 1.0x, 1 MiB downloads ≥ 0.8x, SSE p99 added delay < 1 ms over direct,
// ≤ 40 KiB per idle tunnel, peak RSS under keep-alive load ≤ 64 MiB.
func rowDefs() []rowDef {
	return []rowDef{
		{sKeepAlive, mReqPerSec, "requests/s", ratioAtLeast(0.9)},
		{sKeepAlive, mCPUPerReq, "proxy CPU µs/request", ratioAtMost(1.15)},
		{sKeepAlive, mP50, "latency p50 ms", goal{}},
		{sKeepAlive, mP99, "latency p99 ms", goal{}},
		{sKeepAlive, mUpstreamConns, "upstream conns/1000 req", goal{}},
		{sPeak, mPeakRSS, "peak RSS MiB (VmHWM)", keyholeAtMost(64)},
		{sClose, mReqPerSec, "connections/s", ratioAtLeast(1.0)},
		{sClose, mCPUPerReq, "proxy CPU µs/connection", goal{}},
		{sClose, mP99, "latency p99 ms", goal{}},
		{sClose, mUpstreamConns, "upstream conns/1000 req", goal{}},
		{sHangUp, mReqPerSec, "connections/s", ratioAtLeast(1.0)},
		{sHangUp, mCPUPerReq, "proxy CPU µs/connection", goal{}},
		{sHangUp, mP99, "latency p99 ms", goal{}},
		{sHangUp, mUpstreamConns, "upstream conns/1000 req", goal{}},
		{sLarge, mMBPerSec, "MB/s", ratioAtLeast(0.8)},
		{sLarge, mCPUPerMiB, "proxy CPU µs/MiB", goal{}},
		{sSSE, mP50, "event delay p50 ms", goal{}},
		{sSSE, mP99, "event delay p99 ms", goal{}},
		{sSSE, mAddedP50, "added over direct p50 ms", goal{}},
		{sSSE, mAddedP99, "added over direct p99 ms", keyholeBelow(1)},
		{sIdle, mKiBPerTunnel, "RSS KiB per idle tunnel", keyholeAtMost(40)},
		{sIdle, mRSSBefore, "RSS before MiB", goal{}},
		{sIdle, mFDsAfter, "open fds after closing", goal{}},
		{sH2, mReqPerSec, "requests/s", goal{}},
		{sH2, mCPUPerReq, "proxy CPU µs/request", goal{}},
		{sH2, mP50, "latency p50 ms", goal{}},
		{sH2, mP99, "latency p99 ms", goal{}},
	}
}

// row is one line of the results, as printed and as written to JSON.
// Numbers that could not be measured are null.
type row struct {
	Scenario string   `json:"scenario"`
	Metric   string   `json:"metric"`
	Key      string   `json:"key"`
	Baseline *float64 `json:"baseline"`
	Keyhole  *float64 `json:"keyhole"`
	Ratio    *float64 `json:"ratio"` // keyhole / baseline; null when the baseline is not positive or keyhole is negative
	Goal     string   `json:"goal,omitempty"`
	Pass     *bool    `json:"pass,omitempty"`
}

// rows computes every row from the medians of the rounds.
func (b *bench) rows() []row {
	var out []row
	for _, d := range rowDefs() {
		base, kh := b.median(d.scn, "baseline", d.key), b.median(d.scn, "keyhole", d.key)
		r := row{Scenario: d.scn, Metric: d.label, Key: d.key, Baseline: num(base), Keyhole: num(kh), Goal: d.goal.text}
		if base > 0 && kh >= 0 {
			r.Ratio = num(kh / base)
		}
		if d.goal.check != nil && !math.IsNaN(base) && !math.IsNaN(kh) {
			ok := d.goal.check(base, kh)
			r.Pass = &ok
		}
		out = append(out, r)
	}
	return out
}

// median returns the median over rounds of metric key, NaN when absent.
func (b *bench) median(scn, tgt, key string) float64 {
	var xs []float64
	for _, s := range b.samples[scn][tgt] {
		if v, ok := s[key]; ok {
			xs = append(xs, v)
		}
	}
	return median(xs)
}

// num returns a pointer to v, or nil for NaN and infinities (which JSON
// cannot hold).
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// printTable writes the rows as an aligned table, then the notes.
func printTable(w io.Writer, rows []row, notes []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tmetric\tbaseline\tkeyhole\tratio\tgoal\tresult")
	met, goals := 0, 0
	for _, r := range rows {
		result := ""
		if r.Pass != nil {
			goals++
			result = "FAIL"
			if *r.Pass {
				met++
				result = "pass"
			}
		} else if r.Goal != "" {
			goals++
			result = "n/a"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Metric, cell(r.Baseline, ""), cell(r.Keyhole, ""), cell(r.Ratio, "x"), r.Goal, result)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print table: %w", err)
	}
	fmt.Fprintf(w, "\n%d of %d goals met.\n", met, goals)
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	return nil
}

// cell formats a number with about four significant digits.
func cell(v *float64, unit string) string {
	if v == nil {
		return "-"
	}
	switch a := math.Abs(*v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f%s", *v, unit)
	case a >= 10:
		return fmt.Sprintf("%.1f%s", *v, unit)
	default:
		return fmt.Sprintf("%.3f%s", *v, unit)
	}
}

// results is the JSON document -json writes.
type results struct {
	Started time.Time                        `json:"started"`
	Plan    plan                             `json:"plan"`
	Machine machine                          `json:"machine"`
	Rows    []row                            `json:"rows"`
	Rounds  map[string]map[string][]sample   `json:"rounds"`
	Errors  map[string]map[string]errorCount `json:"errors,omitempty"`
	Notes   []string                         `json:"notes,omitempty"`
}

// machine describes where the run happened.
type machine struct {
	GoVersion string  `json:"go_version"`
	CPUs      int     `json:"cpus"`
	ClkTck    float64 `json:"clk_tck"`
	Keyhole   string  `json:"keyhole_binary"`
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended: above CPUs, other work shared the machine.
	LoadStart *float64 `json:"load_average_start"`
	LoadEnd   *float64 `json:"load_average_end"`
}

// writeJSON writes res to path.
func writeJSON(path string, res results) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// errorCount is how many requests of one scenario failed on one target,
// and the first failure.
type errorCount struct {
	Count int    `json:"count"`
	First string `json:"first"`
}

// errorSummary returns the failures by scenario and target.
func (b *bench) errorSummary() map[string]map[string]errorCount {
	out := map[string]map[string]errorCount{}
	for scn, byTarget := range b.errs {
		for tgt, e := range byTarget {
			if e.n == 0 {
				continue
			}
			if out[scn] == nil {
				out[scn] = map[string]errorCount{}
			}
			out[scn][tgt] = errorCount{Count: e.n, First: e.first.Error()}
		}
	}
	return out
}
