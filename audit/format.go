package audit

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ANSI colours.
const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

// Printer writes entries as aligned, readable text lines, or as their raw
// JSON. The zero Printer is not usable: set W and Loc.
type Printer struct {
	W     io.Writer
	JSON  bool           // write each entry's raw line unchanged
	Color bool           // colour decisions and events (for terminals)
	Loc   *time.Location // the time column's zone
	buf   []byte
}

// Print writes e as one line in one Write.
func (p *Printer) Print(e *Entry) error {
	if p.JSON {
		p.buf = append(append(p.buf[:0], e.Raw...), '\n')
	} else {
		p.buf = p.appendLine(p.buf[:0], e)
	}
	if _, err := p.W.Write(p.buf); err != nil {
		return fmt.Errorf("audit: write output: %w", err)
	}
	return nil
}

// Column widths of a request line. A longer field is cut to the width,
// ending with "…", so that the columns stay aligned; --json shows it whole.
const (
	agentWidth   = 12
	tokenWidth   = 16
	methodWidth  = 7
	targetWidth  = 40
	secretsWidth = 20
)

// appendLine formats e: for a request, columns two spaces apart (time,
// agent, token id, decision, status, method, host and path, secrets, then
// the values scrubbed or the refusal's reason, duration, error), as in
//
//	2026-11-26 10:30:00.123Z  billing       task-42           allow  200  POST     api.stripe.com/v1/charges                 STRIPE_LIVE           scrubbed=0  41.2ms
//	2026-11-26 10:30:00.124Z  billing       -                 deny   403  POST     evil.example/v1/charges                   STRIPE_LIVE           host_not_allowed  0.21ms
//
// and for an event "2026-11-26 10:30:01.000Z  reload ok" or "reload
// FAILED: error". A token id that did not verify ends with "?" (the agent
// and id are only what the token claimed). Every field from the log is
// escaped so that it cannot move the cursor or forge a line on the
// auditor's terminal. Times are in p.Loc.
func (p *Printer) appendLine(b []byte, e *Entry) []byte {
	b = e.Time.In(p.Loc).AppendFormat(b, timeLayout) // the date, and "Z" for UTC
	if e.Event != "" {
		return append(p.paint(append(b, "  "...), yellow, eventText(e)), '\n')
	}
	b = appendCol(b, printable(e.Agent), agentWidth)
	b = appendCol(b, tokenText(e), tokenWidth)
	colour := red
	if e.Decision == Allow {
		colour = green
	}
	b = p.paint(append(b, "  "...), colour, fmt.Sprintf("%-5s", printable(e.Decision)))
	b = strconv.AppendInt(append(b, "  "...), int64(e.Status), 10)
	b = appendCol(b, printable(e.Method), methodWidth)
	b = appendCol(b, target(e), targetWidth)
	b = appendCol(b, secretsText(e.Secrets), secretsWidth)
	if e.Reason != "" {
		b = p.paint(append(b, "  "...), red, printable(e.Reason))
	} else {
		b = append(append(b, "  scrubbed="...), strconv.Itoa(e.Scrubbed)...)
	}
	b = append(append(b, "  "...), formatDuration(e.Duration)...)
	if e.Error != "" {
		b = append(append(b, "  error="...), printable(e.Error)...)
	}
	return append(b, '\n')
}

// tokenText is the token id column: "-" without a token, the id with "?"
// appended when the token did not verify.
func tokenText(e *Entry) string {
	s := printable(e.TokenID)
	if e.TokenVerified != nil && !*e.TokenVerified {
		s = cut(s, tokenWidth-1) + "?"
	}
	return s
}

// appendCol appends two spaces and s, cut to width (see cut), padded to
// width characters.
func appendCol(b []byte, s string, width int) []byte {
	s = cut(s, width)
	b = append(append(b, "  "...), s...)
	for n := utf8.RuneCountInString(s); n < width; n++ {
		b = append(b, ' ')
	}
	return b
}

// cut returns s if it has at most width characters, else its first
// width-1 characters and "…".
func cut(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	i := 0
	for range width - 1 {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + "…"
}

// paint appends s in colour when p colours its output.
func (p *Printer) paint(b []byte, colour, s string) []byte {
	if !p.Color {
		return append(b, s...)
	}
	return append(append(append(b, colour...), s...), reset...)
}

// eventText is "reload", "reload ok" or "reload FAILED: first error (and
// N more)".
func eventText(e *Entry) string {
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
func target(e *Entry) string {
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
