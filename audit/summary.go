package audit

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Count is how many request records share one name (an agent, a host, a
// secret or a refusal reason) and how many of those were refused.
type Count struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"`
	Denied   int    `json:"denied"`
}

// EventCount is how many events of one kind there were, and how many of
// them reported failure ("ok": false).
type EventCount struct {
	Name   string `json:"name"`
	Count  int    `json:"count"`
	Failed int    `json:"failed"`
}

// Summary answers "which agent sent which secret where, and what was
// refused" for a stretch of the audit log. Its lists are sorted by count,
// most first, then by name, and are empty, not nil, when there is nothing
// to count, so that its JSON always has every key.
type Summary struct {
	From     time.Time    `json:"from,omitzero"` // the earliest entry's time; zero (and not in JSON) when there is none
	To       time.Time    `json:"to,omitzero"`   // the latest entry's time; zero (and not in JSON) when there is none
	Requests int          `json:"requests"`
	Allowed  int          `json:"allowed"`
	Denied   int          `json:"denied"`
	Scrubbed int          `json:"scrubbed"` // secret values scrubbed from responses, in total
	Agents   []Count      `json:"agents"`
	Hosts    []Count      `json:"hosts"`
	Secrets  []Count      `json:"secrets"`
	Reasons  []Count      `json:"reasons"` // refusals by reason: Requests equals Denied
	Events   []EventCount `json:"events"`
}

// Summarize counts entries; see Summarizer for a log too long to hold.
func Summarize(entries []Entry) Summary {
	var s Summarizer
	for i := range entries {
		s.Add(&entries[i])
	}
	return s.Summary()
}

// Summarizer counts entries one at a time, holding only the counts. The
// zero Summarizer is ready to use.
type Summarizer struct {
	sum                             Summary
	agents, hosts, secrets, reasons map[string]*Count
	events                          map[string]*EventCount
}

// Add counts e.
func (s *Summarizer) Add(e *Entry) {
	if s.sum.From.IsZero() || e.Time.Before(s.sum.From) {
		s.sum.From = e.Time
	}
	if e.Time.After(s.sum.To) {
		s.sum.To = e.Time
	}
	if e.Event != "" {
		c := tally(&s.events, e.Event, func(n string) *EventCount { return &EventCount{Name: n} })
		c.Count++
		if e.OK != nil && !*e.OK {
			c.Failed++
		}
		return
	}
	denied := e.Decision == Deny
	s.sum.Requests++
	switch e.Decision {
	case Allow:
		s.sum.Allowed++
	case Deny:
		s.sum.Denied++
	}
	s.sum.Scrubbed += e.Scrubbed
	count(&s.agents, e.Agent, denied)
	count(&s.hosts, e.Host, denied)
	for _, name := range e.Secrets {
		count(&s.secrets, name, denied)
	}
	if denied {
		count(&s.reasons, e.Reason, true)
	}
}

func count(m *map[string]*Count, name string, denied bool) {
	c := tally(m, name, func(n string) *Count { return &Count{Name: n} })
	c.Requests++
	if denied {
		c.Denied++
	}
}

// tally returns the counter for name in *m, making the map and the
// counter as needed.
func tally[T any](m *map[string]*T, name string, newT func(string) *T) *T {
	if *m == nil {
		*m = map[string]*T{}
	}
	c := (*m)[name]
	if c == nil {
		c = newT(name)
		(*m)[name] = c
	}
	return c
}

// Summary returns the counts so far. The Summarizer may go on counting.
func (s *Summarizer) Summary() Summary {
	sum := s.sum
	sum.Agents = sorted(s.agents, func(c Count) int { return c.Requests })
	sum.Hosts = sorted(s.hosts, func(c Count) int { return c.Requests })
	sum.Secrets = sorted(s.secrets, func(c Count) int { return c.Requests })
	sum.Reasons = sorted(s.reasons, func(c Count) int { return c.Requests })
	sum.Events = sorted(s.events, func(c EventCount) int { return c.Count })
	return sum
}

// sorted lists m's counters, most first, then by name.
func sorted[T any](m map[string]*T, n func(T) int) []T {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(n(*m[b]), n(*m[a])), strings.Compare(a, b))
	})
	out := make([]T, 0, len(names))
	for _, name := range names {
		out = append(out, *m[name])
	}
	return out
}

// WriteJSON writes s as one indented JSON object.
func (s Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("audit: write summary: %w", err)
	}
	return nil
}

// Write writes s as text for a person: the window and totals, then one
// aligned table each for agents, hosts, secrets, refusal reasons and
// events, leaving out empty ones. Names are printed as they are when they
// are plain and quoted when they hold spaces or control characters, so a
// name in the log cannot move the cursor or forge a line; an empty name
// is "-".
func (s Summary) Write(w io.Writer) error {
	var b strings.Builder
	if s.From.IsZero() {
		b.WriteString("no entries\n")
	} else {
		fmt.Fprintf(&b, "from %s to %s (%s)\n", s.From.UTC().Format(timeLayout), s.To.UTC().Format(timeLayout), s.To.Sub(s.From))
	}
	fmt.Fprintf(&b, "requests %d: allowed %d, denied %d; secret values scrubbed from responses: %d\n",
		s.Requests, s.Allowed, s.Denied, s.Scrubbed)
	table(&b, "AGENT", s.Agents)
	table(&b, "HOST", s.Hosts)
	table(&b, "SECRET", s.Secrets)
	if len(s.Reasons) > 0 {
		rows := make([][]string, 0, len(s.Reasons))
		for _, c := range s.Reasons {
			rows = append(rows, []string{printable(c.Name), strconv.Itoa(c.Requests)})
		}
		writeTable(&b, []string{"REASON", "DENIED"}, rows)
	}
	if len(s.Events) > 0 {
		rows := make([][]string, 0, len(s.Events))
		for _, c := range s.Events {
			rows = append(rows, []string{printable(c.Name), strconv.Itoa(c.Count), strconv.Itoa(c.Failed)})
		}
		writeTable(&b, []string{"EVENT", "COUNT", "FAILED"}, rows)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("audit: write summary: %w", err)
	}
	return nil
}

// timeLayout is how times are shown: the date, milliseconds, and the
// zone, "Z" for UTC.
const timeLayout = "2006-01-02 15:04:05.000Z07:00"

func table(b *strings.Builder, title string, counts []Count) {
	if len(counts) == 0 {
		return
	}
	rows := make([][]string, 0, len(counts))
	for _, c := range counts {
		rows = append(rows, []string{printable(c.Name), strconv.Itoa(c.Requests), strconv.Itoa(c.Denied)})
	}
	writeTable(b, []string{title, "REQUESTS", "DENIED"}, rows)
}

// writeTable writes a blank line, then head and rows in columns two
// spaces apart: the first column left-aligned, the others (numbers)
// right-aligned.
func writeTable(b *strings.Builder, head []string, rows [][]string) {
	widths := make([]int, len(head))
	for _, row := range append([][]string{head}, rows...) {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	b.WriteByte('\n')
	for _, row := range append([][]string{head}, rows...) {
		fmt.Fprintf(b, "%-*s", widths[0], row[0])
		for i := 1; i < len(row); i++ {
			fmt.Fprintf(b, "  %*s", widths[i], row[i])
		}
		b.WriteByte('\n')
	}
}
