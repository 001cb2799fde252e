package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"keyhole/audit"
)

// verifyCommand runs "keyhole audit verify [FILE...]": it checks the hash
// chain of the given files, oldest first (the audit log alone when none is
// given), under the state dir's audit key. It prints a summary and returns
// nil when the chain is whole; otherwise it prints FILE:LINE and what is
// wrong there, and fails.
func verifyCommand(args []string, stdout, stderr io.Writer) error {
	s, files, err := parseSettings("audit verify", args, stderr)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		if s.AuditLog == "" || s.AuditLog == "-" {
			return errors.New("audit verify: the audit log goes to stdout; set KEYHOLE_AUDIT_LOG to a file or pass FILE... (oldest first)")
		}
		files = []string{s.AuditLog}
	}
	key, err := audit.LoadKey(s.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit verify: no audit key %s: set KEYHOLE_STATE_DIR (or --state-dir) to the state dir of the keyhole that wrote the log", filepath.Join(s.StateDir, audit.KeyFile))
	}
	if err != nil {
		return err
	}
	res, err := audit.Verify(key, files)
	var brk *audit.Break
	if errors.As(err, &brk) {
		return fmt.Errorf("audit verify: %w", brk)
	}
	if err != nil {
		return err
	}
	from := "from the start of the chain"
	if res.First != "" {
		from = "continuing a file not given (prev " + short(res.First) + ")"
	}
	fmt.Fprintf(stdout, "ok: %d lines in %d files, chain whole %s\nlast hash: %s\n", res.Lines, res.Files, from, res.Last)
	fmt.Fprintln(stdout, "(lines removed from the end of the last file show only once keyhole writes its next line; keep the last hash to compare later)")
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
