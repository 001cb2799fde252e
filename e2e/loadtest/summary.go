package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// summarize reads the -json files of several runs and writes one Markdown
// table: a line per row of the runs (in rowDefs' order), a column per run
// with keyhole's ratio to the row's reference and keyhole's value beside
// it (keyhole's value alone where the row has no reference or its goal is
// on the value), then the median of the runs, their range, and in how
// many runs the row's goal was met. Runs that did not measure a row show
// "–" there.
func summarize(paths []string, w io.Writer) error {
	runs := make([]results, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("summarize: %w", err)
		}
		if err := json.Unmarshal(b, &runs[i]); err != nil {
			return fmt.Errorf("summarize: %s: %w", p, err)
		}
	}
	fmt.Fprint(w, "| scenario | metric | goal |")
	for i := range runs {
		fmt.Fprintf(w, " run %d |", i+1)
	}
	fmt.Fprintln(w, " median | range | goal met |")
	fmt.Fprint(w, "| --- | --- | --- |")
	for range runs {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w, " --- | --- | --- |")
	for _, d := range rowDefs() {
		var (
			cells         []string
			xs            []float64
			met, verdicts int
			unit          string
			label         = d.label
		)
		for _, res := range runs {
			r, ok := findRow(res.Rows, d)
			if !ok {
				cells = append(cells, "–")
				continue
			}
			label = r.Metric
			if r.Pass != nil {
				verdicts++
				if *r.Pass {
					met++
				}
			}
			v, kh := r.Ratio, r.Values["keyhole"]
			unit = "x"
			if d.ref == "" || d.goal.onValue {
				v, unit = kh, ""
			}
			if v == nil {
				cells = append(cells, "–")
				continue
			}
			xs = append(xs, *v)
			c := cell(v, unit)
			if unit == "x" && kh != nil {
				c += " (" + cell(kh, "") + ")"
			}
			cells = append(cells, c)
		}
		if len(xs) == 0 {
			continue // no run measured this row
		}
		goal, verdict := d.goal.text, ""
		if verdicts > 0 {
			verdict = fmt.Sprintf("%d of %d", met, verdicts)
		}
		m, lo, hi := median(xs), slices.Min(xs), slices.Max(xs)
		fmt.Fprintf(w, "| %s | %s | %s | %s | **%s** | %s–%s | %s |\n", d.scn, strings.TrimSpace(label), goal,
			strings.Join(cells, " | "), cell(&m, unit), cell(&lo, unit), cell(&hi, unit), verdict)
	}
	return nil
}

// findRow returns the row of rows that d describes.
func findRow(rows []row, d rowDef) (row, bool) {
	agg := "median"
	if d.agg == aggMax {
		agg = "max"
	}
	for _, r := range rows {
		if r.Scenario == d.scn && r.Key == d.key && r.Agg == agg {
			return r, true
		}
	}
	return row{}, false
}
