package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

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
		fs.StringVar(&o.filter.Secret, "secret", "", "only requests that used this secret, or named it and were refused")
		fs.StringVar(&o.filter.Token, "token", "", "only requests made with this token id, or with a token attenuated from it")
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
		return errors.New("audit: want tail, summary or verify")
	}
	sub, args := args[0], args[1:]
	if sub == "verify" {
		return verifyCommand(args, stdout, stderr)
	}
	if sub != "tail" && sub != "summary" {
		return fmt.Errorf("audit: unknown command %q; want tail, summary or verify", sub)
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
	p := &audit.Printer{W: stdout, JSON: o.json, Color: !o.json && colorful(stdout), Loc: time.UTC}
	show := func(e audit.Entry) error {
		if !o.filter.Match(&e) {
			return nil
		}
		return p.Print(&e)
	}
	if !o.follow {
		bw := bufio.NewWriter(stdout)
		p.W = bw
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
	p.W = stdout // one write a line, as lines arrive
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
