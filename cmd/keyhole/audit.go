package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"keyhole/audit"
)

// auditCommand runs "keyhole audit tail|summary": it reads the audit log
// and returns, or with "tail -f" follows it until SIGINT or SIGTERM.
func auditCommand(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runAudit(ctx, args, stdout, stderr)
}

// tailBacklog is how many existing lines "tail -f" shows before following
// when no filter is given, as tail(1) does.
const tailBacklog = 10

// auditOptions are the flags of "audit tail" and "audit summary".
type auditOptions struct {
	follow bool
	json   bool
	filter audit.Filter
}

func (o *auditOptions) register(sub string, now time.Time) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		if sub == "tail" {
			fs.BoolVar(&o.follow, "f", false, "follow the log as it grows (until interrupted); without filters, start with its last 10 lines")
			fs.BoolVar(&o.follow, "follow", false, "same as -f")
		}
		fs.StringVar(&o.filter.Agent, "agent", "", "only this agent's requests")
		fs.StringVar(&o.filter.Host, "host", "", `only requests to this host, or to any subdomain of example.com with "*.example.com"`)
		fs.StringVar(&o.filter.Secret, "secret", "", "only requests that used this secret")
		fs.BoolVar(&o.filter.DeniedOnly, "denied", false, "only refused requests")
		fs.Func("since", "only entries from this long ago on (10m, 2h) or from this time on (RFC 3339)", func(v string) error {
			t, err := parseSince(v, now)
			o.filter.Since = t
			return err
		})
		fs.BoolVar(&o.json, "json", false, "print the matching records as JSON, unchanged")
	}
}

// parseSince reads --since: a duration back from now, or a time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, errors.New("must be a positive duration")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, errors.New("want a duration such as 10m or a time such as 2026-11-26T10:30:00Z")
	}
	return t, nil
}

// runAudit is auditCommand until ctx is done.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("audit: want tail or summary")
	}
	sub, args := args[0], args[1:]
	if sub != "tail" && sub != "summary" {
		return fmt.Errorf("audit: unknown command %q; want tail or summary", sub)
	}
	var o auditOptions
	s, rest, err := parseSettings("audit "+sub, args, stderr, o.register(sub, time.Now()))
	if err != nil {
		return err
	}
	path := s.AuditLog
	switch len(rest) {
	case 0:
	case 1:
		path = rest[0]
	default:
		return fmt.Errorf("audit %s: want at most one FILE", sub)
	}
	if path == "" || path == "-" {
		return fmt.Errorf("audit %s: the audit log goes to stdout; set KEYHOLE_AUDIT_LOG to a file or pass FILE", sub)
	}
	if sub == "summary" {
		return summarizeLog(path, o, stdout, stderr)
	}
	p := &linePrinter{json: o.json, color: !o.json && colorful(stdout), loc: time.Local}
	show := func(e audit.Entry) error {
		if !o.filter.Match(&e) {
			return nil
		}
		return p.print(&e)
	}
	if !o.follow {
		bw := bufio.NewWriter(stdout)
		p.w = bw
		err := readLog(path, stderr, "tail", show)
		if ferr := bw.Flush(); err == nil && ferr != nil {
			err = fmt.Errorf("audit tail: write output: %w", ferr)
		}
		return err
	}
	var fw audit.Follower
	fromStart := o.filter != audit.Filter{}
	if !fromStart {
		fw.Backlog = tailBacklog
	}
	p.w = stdout // one write a line, as lines arrive
	err = fw.Follow(ctx, path, fromStart, show)
	reportSkipped(stderr, "tail", int(fw.Skipped()))
	return err
}

// readLog scans the log at path with fn and reports skipped lines on
// stderr.
func readLog(path string, stderr io.Writer, sub string, fn func(audit.Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit %s: %w", sub, err)
	}
	defer f.Close()
	skipped, err := audit.Scan(f, fn)
	reportSkipped(stderr, sub, skipped)
	return err
}

func summarizeLog(path string, o auditOptions, stdout, stderr io.Writer) error {
	var sum audit.Summarizer
	err := readLog(path, stderr, "summary", func(e audit.Entry) error {
		if o.filter.Match(&e) {
			sum.Add(&e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if o.json {
		return sum.Summary().WriteJSON(stdout)
	}
	return sum.Summary().Write(stdout)
}

func reportSkipped(stderr io.Writer, sub string, n int) {
	if n > 0 {
		fmt.Fprintf(stderr, "keyhole audit %s: skipped %d lines that are not audit records (malformed, or longer than 1 MiB)\n", sub, n)
	}
}

// colorful reports whether w is a terminal that may be coloured: a
// character device, with NO_COLOR (https://no-color.org) unset or empty
// and TERM not "dumb".
func colorful(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ANSI colours.
const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

// linePrinter writes entries as aligned text lines or as their raw JSON.
type linePrinter struct {
	w     io.Writer
	json  bool
	color bool
	loc   *time.Location // the time column's zone
	buf   []byte
}

// print writes e as one line in one Write.
func (p *linePrinter) print(e *audit.Entry) error {
	if p.json {
		p.buf = append(append(p.buf[:0], e.Raw...), '\n')
	} else {
		p.buf = p.appendLine(p.buf[:0], e)
	}
	if _, err := p.w.Write(p.buf); err != nil {
		return fmt.Errorf("audit tail: write output: %w", err)
	}
	return nil
}

// appendLine formats e: for a request, columns two spaces apart (time,
// agent, decision, status and the reason of a refusal, method, host and
// path, secrets, values scrubbed unless refused, duration, error), as in
//
//	10:30:00.123  billing     allow  200  POST     api.stripe.com/v1/charges         STRIPE_LIVE   scrubbed=0  41.2ms
//	10:30:00.124  billing     deny   403 host_not_allowed  POST     evil.example/v1/charges           STRIPE_LIVE   0.21ms
//
// and for an event "10:30:01.000  reload ok" or "reload FAILED: error".
// Every field from the log is escaped so that it cannot move the cursor
// or forge a line on the auditor's terminal. Times are in p.loc.
func (p *linePrinter) appendLine(b []byte, e *audit.Entry) []byte {
	b = e.Time.In(p.loc).AppendFormat(b, "15:04:05.000")
	if e.Event != "" {
		return append(p.paint(append(b, "  "...), yellow, eventText(e)), '\n')
	}
	b = appendCol(b, printable(e.Agent), 10)
	colour := red
	if e.Decision == audit.Allow {
		colour = green
	}
	b = p.paint(append(b, "  "...), colour, fmt.Sprintf("%-5s", printable(e.Decision)))
	b = strconv.AppendInt(append(b, "  "...), int64(e.Status), 10)
	if e.Reason != "" {
		b = append(append(b, ' '), printable(e.Reason)...)
	}
	b = appendCol(b, printable(e.Method), 7)
	b = appendCol(b, target(e), 32)
	b = appendCol(b, secretsText(e.Secrets), 12)
	if e.Decision != audit.Deny || e.Scrubbed != 0 {
		b = append(append(b, "  scrubbed="...), strconv.Itoa(e.Scrubbed)...)
	}
	b = append(append(b, "  "...), formatDuration(e.Duration)...)
	if e.Error != "" {
		b = append(append(b, "  error="...), printable(e.Error)...)
	}
	return append(b, '\n')
}

// appendCol appends two spaces and s padded to width characters.
func appendCol(b []byte, s string, width int) []byte {
	b = append(append(b, "  "...), s...)
	for n := utf8.RuneCountInString(s); n < width; n++ {
		b = append(b, ' ')
	}
	return b
}

// paint appends s in colour when p colours its output.
func (p *linePrinter) paint(b []byte, colour, s string) []byte {
	if !p.color {
		return append(b, s...)
	}
	return append(append(append(b, colour...), s...), reset...)
}

// eventText is "reload", "reload ok" or "reload FAILED: first error (and
// N more)".
func eventText(e *audit.Entry) string {
	s := printable(e.Event)
	switch {
	case e.OK == nil:
	case *e.OK:
		s += " ok"
	default:
		s += " FAILED"
	}
	if len(e.Errors) > 0 {
		s += ": " + escape(e.Errors[0])
		if len(e.Errors) > 1 {
			s += fmt.Sprintf(" (and %d more)", len(e.Errors)-1)
		}
	}
	return s
}

// target is where a request went: host, a port other than the scheme's
// own, and the path; "http://" first for plain HTTP; host:port for a
// CONNECT.
func target(e *audit.Entry) string {
	host := e.Host
	switch {
	case e.Method == "CONNECT" || (e.Port != 0 && e.Port != defaultPort(e.Scheme)):
		host = net.JoinHostPort(host, strconv.Itoa(e.Port))
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	if e.Method == "CONNECT" {
		return printable(host)
	}
	t := host + e.Path
	if e.Scheme == "http" {
		t = "http://" + t
	}
	return printable(t)
}

func defaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

func secretsText(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return printable(strings.Join(names, ","))
}

// formatDuration writes d in milliseconds like the log's duration_ms
// (41.2ms, 0.21ms), or in seconds from one second up.
func formatDuration(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 1000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(ms, 'f', 2, 64) + "ms"
}

// printable returns s if every character in it is printable and not a
// space, "-" if it is empty, and else s quoted with Go escapes, so that a
// column stays one word.
func printable(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\\' || r == utf8.RuneError || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// escape returns s with every character that is not printable (control
// characters, bidi overrides, invalid UTF-8) written as a Go escape;
// spaces stay.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' || !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}
