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

// goal is a pass/fail test of keyhole's value against the row's
// reference value; a zero goal only informs. onValue marks a goal on
// keyhole's value itself rather than on its ratio to the reference.
type goal struct {
	text    string
	check   func(ref, kh float64) bool
	onValue bool
}

func ratioAtMost(x float64) goal {
	return goal{text: fmt.Sprintf("ratio ≤ %.2fx", x), check: func(r, k float64) bool { return k/r <= x }}
}

func ratioAtLeast(x float64) goal {
	return goal{text: fmt.Sprintf("ratio ≥ %.2fx", x), check: func(r, k float64) bool { return k/r >= x }}
}

func keyholeAtMost(x float64) goal {
	return goal{text: fmt.Sprintf("keyhole ≤ %g", x), check: func(_, k float64) bool { return k <= x }, onValue: true}
}

// columns are the targets the table shows, in order.
var columns = []string{"direct", "baseline", "squid", "keyhole", "keyhole-b"}

// aggregate reduces one metric's rounds to the value a row shows.
type aggregate int

const (
	aggMedian aggregate = iota
	aggMax              // the worst round
)

// rowDef is one line of the table: one metric of one scenario for each
// target, aggregated over rounds, and keyhole's ratio to a reference: ref
// (a target) in the same scenario, or in refScn when that is set.
type rowDef struct {
	scn, key, label string
	ref, refScn     string
	agg             aggregate
	goal            goal
}

// rowDefs lists the table's rows, with the goals of issue 18 (and issue
// 9's peak RSS and idle tunnel goals, which still hold).
func rowDefs() []rowDef {
	return []rowDef{
		{scn: sKeepAlive, key: mReqPerSec, label: "requests/s", ref: "direct", goal: ratioAtLeast(0.9)},
		{scn: sKeepAlive, key: mCPUPerReq, label: "proxy CPU µs/request", ref: "baseline", goal: ratioAtMost(0.6)},
		{scn: sKeepAlive, key: mSysPerReq, label: "  of which in the kernel", ref: "baseline"},
		{scn: sKeepAlive, key: mCallsPerReq, label: "proxy read+write syscalls/request", ref: "baseline"},
		{scn: sKeepAlive, key: mSwitchPerReq, label: "proxy context switches/request", ref: "baseline"},
		{scn: sKeepAlive, key: mWaitPerReq, label: "proxy run-queue wait µs/request", ref: "baseline"},
		{scn: sKeepAlive, key: mP50, label: "latency p50 ms", ref: "baseline"},
		{scn: sKeepAlive, key: mP99, label: "latency p99 ms", ref: "baseline"},
		{scn: sKeepAlive, key: mUpstreamConns, label: "upstream conns/1000 req"},
		{scn: sPeak, key: mPeakRSS, label: "peak RSS MiB (VmHWM)", ref: "baseline", goal: keyholeAtMost(64)},
		{scn: sClose, key: mReqPerSec, label: "connections/s", ref: "squid", goal: ratioAtLeast(1.0)},
		{scn: sClose, key: mCPUPerReq, label: "proxy CPU µs/connection", ref: "squid"},
		{scn: sClose, key: mSysPerReq, label: "  of which in the kernel", ref: "squid"},
		{scn: sClose, key: mCallsPerReq, label: "proxy read+write syscalls/connection", ref: "squid"},
		{scn: sClose, key: mP99, label: "latency p99 ms", ref: "squid"},
		{scn: sClose, key: mUpstreamConns, label: "upstream conns/1000 req"},
		{scn: sHangUp, key: mReqPerSec, label: "connections/s", ref: "squid", goal: ratioAtLeast(1.0)},
		{scn: sHangUp, key: mCPUPerReq, label: "proxy CPU µs/connection", ref: "squid"},
		{scn: sHangUp, key: mP99, label: "latency p99 ms", ref: "squid"},
		{scn: sHangUp, key: mUpstreamConns, label: "upstream conns/1000 req"},
		{scn: sLarge, key: mMBPerSec, label: "MB/s", ref: "baseline", goal: ratioAtLeast(1.0)},
		{scn: sLarge, key: mCPUPerMiB, label: "proxy CPU µs/MiB", ref: "baseline", goal: ratioAtMost(1.0)},
		{scn: sSSE, key: mP50, label: "event delay p50 ms", ref: "direct"},
		{scn: sSSE, key: mP99, label: "event delay p99 ms", ref: "direct"},
		{scn: sSSE, key: mAddedP99, label: "added over direct p99 ms", ref: "baseline"},
		{scn: sSSE, key: mAddedP99, label: "added p99 ms, worst round", agg: aggMax, goal: keyholeAtMost(5)},
		{scn: sSSE, key: mOverBaseP99, label: "p99 − baseline's ms, worst round", agg: aggMax, goal: keyholeAtMost(0)},
		{scn: sH2, key: mReqPerSec, label: "requests/s", ref: "baseline"},
		{scn: sH2, key: mCPUPerReq, label: "proxy CPU µs/request", ref: "keyhole", refScn: sKeepAlive, goal: ratioAtMost(1.0)},
		{scn: sH2, key: mSysPerReq, label: "  of which in the kernel", ref: "baseline"},
		{scn: sH2, key: mCallsPerReq, label: "proxy read+write syscalls/request", ref: "keyhole", refScn: sKeepAlive},
		{scn: sH2, key: mP50, label: "latency p50 ms", ref: "baseline"},
		{scn: sH2, key: mP99, label: "latency p99 ms", ref: "baseline"},
		{scn: sIdle, key: mKiBPerTunnel, label: "RSS KiB per idle tunnel", ref: "baseline", goal: keyholeAtMost(40)},
		{scn: sIdle, key: mRSSBefore, label: "RSS before MiB", ref: "baseline"},
		{scn: sIdle, key: mFDsAfter, label: "open fds after closing"},
	}
}

// row is one line of the results, as printed and as written to JSON.
// Numbers that could not be measured are null or absent.
type row struct {
	Scenario string              `json:"scenario"`
	Metric   string              `json:"metric"`
	Key      string              `json:"key"`
	Agg      string              `json:"aggregate"` // "median" or "max" over rounds
	Values   map[string]*float64 `json:"values"`    // by target: direct, baseline, squid, keyhole
	Ref      string              `json:"ratio_to,omitempty"`
	Ratio    *float64            `json:"ratio"` // keyhole / Ref; null when Ref is not positive or keyhole is negative
	Goal     string              `json:"goal,omitempty"`
	Pass     *bool               `json:"pass,omitempty"`
}

// rows computes every row from the rounds.
func (b *bench) rows() []row {
	var out []row
	for _, d := range rowDefs() {
		r := row{Scenario: d.scn, Metric: d.label, Key: d.key, Agg: "median", Values: map[string]*float64{}, Goal: d.goal.text}
		value := b.median
		if d.agg == aggMax {
			r.Agg, value = "max", b.worst
		}
		for _, tgt := range columns {
			if v := num(value(d.scn, tgt, d.key)); v != nil {
				r.Values[tgt] = v
			}
		}
		if len(r.Values) == 0 {
			continue // the scenario did not run (-only)
		}
		kh, ref := value(d.scn, "keyhole", d.key), math.NaN()
		if d.ref != "" {
			refScn := d.scn
			if d.refScn != "" {
				refScn = d.refScn
				r.Ref = d.ref + " " + d.refScn
			} else {
				r.Ref = d.ref
			}
			ref = value(refScn, d.ref, d.key)
			if ref > 0 && kh >= 0 {
				r.Ratio = num(kh / ref)
			}
		}
		if d.goal.check != nil && !math.IsNaN(kh) && (d.ref == "" || !math.IsNaN(ref)) {
			ok := d.goal.check(ref, kh)
			r.Pass = &ok
		}
		out = append(out, r)
	}
	return out
}

// worst returns the largest value over rounds of metric key, NaN when
// absent.
func (b *bench) worst(scn, tgt, key string) float64 {
	w := math.NaN()
	for _, s := range b.samples[scn][tgt] {
		if v, ok := s[key]; ok && (math.IsNaN(w) || v > w) {
			w = v
		}
	}
	return w
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
	ab := false // -keyhole-b: its column and its ratio to keyhole
	for _, r := range rows {
		ab = ab || r.Values["keyhole-b"] != nil
	}
	head := "scenario\tmetric\tdirect\tbaseline\tsquid\tkeyhole\tratio\tto\tgoal\tresult"
	if ab {
		head += "\tkeyhole-b\tb/keyhole"
	}
	fmt.Fprintln(tw, head)
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
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Scenario, r.Metric,
			cell(r.Values["direct"], ""), cell(r.Values["baseline"], ""), cell(r.Values["squid"], ""), cell(r.Values["keyhole"], ""),
			cell(r.Ratio, "x"), r.Ref, r.Goal, result)
		if ab {
			var ratio *float64
			if a, b := r.Values["keyhole"], r.Values["keyhole-b"]; a != nil && b != nil && *a > 0 && *b >= 0 {
				ratio = num(*b / *a)
			}
			line += "\t" + cell(r.Values["keyhole-b"], "") + "\t" + cell(ratio, "x")
		}
		fmt.Fprintln(tw, line)
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
	Pinning   string  `json:"pinning"`
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
