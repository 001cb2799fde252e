// Package execsource reads exec: secret sources: it runs a program, without
// a shell, and takes its standard output as the secret's value.
//
// The program's stdin is empty, it runs for at most 10 seconds (then its
// whole process group is killed, so nothing it started lives on), and its
// output is bounded at 64 KiB (a program that prints more is killed). One
// trailing newline is trimmed. Output that is a JSON object
// {"value": "...", "expires_at": "RFC 3339"} or {"value": "...",
// "ttl_seconds": N} gives the value and when it expires; the Loader runs
// the program again before then.
//
// A program's stderr may hold secrets (a tool that echoes its input, a
// debug trace), so it is never kept: an error says only the exit status
// and the length of stderr's first line.
package execsource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"syscall"
	"time"

	"keyhole/rules"
	"keyhole/secret"
)

// Defaults of a Kind whose fields are zero.
const (
	// DefaultTimeout is how long a program may run.
	DefaultTimeout = 10 * time.Second
	// MaxOutput bounds a program's standard output.
	MaxOutput = 64 << 10
)

// Kind runs exec: sources for a rules.Loader. The zero Kind uses the
// defaults; it is safe for concurrent use.
type Kind struct {
	// Timeout bounds each run; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Read runs src, which must be a rules.ExecSource, and returns its value.
// The program inherits keyhole's environment (so that `op`, `aws` and
// `pass` find their sessions and profiles).
func (k *Kind) Read(ctx context.Context, src rules.Source) (secret.Value, time.Time, error) {
	es, ok := src.(rules.ExecSource)
	if !ok || len(es.Argv) == 0 {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: not an exec: source", src)
	}
	out, err := k.run(ctx, es.Argv)
	if err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	defer clear(out)
	b, expires, err := ParseOutput(out, time.Now())
	if err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	v, err := rules.CheckValue(src, b)
	return v, expires, err
}

// run runs argv and returns its standard output.
func (k *Kind) run(ctx context.Context, argv []string) ([]byte, error) {
	timeout := k.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = nil // /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// At the timeout kill the whole group: a shell script's children
	// would otherwise outlive it and hold its output open.
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = time.Second
	stderr := &firstLine{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, errors.New("the program was not found")
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, errors.New("the program is not executable")
		}
		return nil, errors.New("the program could not be started")
	}
	out, readErr := io.ReadAll(io.LimitReader(stdout, MaxOutput+1))
	tooLarge := len(out) > MaxOutput
	if tooLarge {
		_ = killGroup(cmd) // do not wait for the rest of its output
	}
	// No kill after Wait: once the leader is reaped its pid, and so its
	// group id, may belong to another process.
	waitErr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		clear(out)
		return nil, fmt.Errorf("killed after the %s timeout (its process group too)", timeout)
	case tooLarge:
		clear(out)
		return nil, fmt.Errorf("printed more than %d bytes; killed", MaxOutput)
	case waitErr != nil:
		clear(out)
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			return nil, fmt.Errorf("%s (stderr's first line: %d bytes, not logged)", status(ee), stderr.n)
		}
		return nil, errors.New("the program failed")
	case readErr != nil:
		clear(out)
		return nil, errors.New("reading its output failed")
	}
	return out, nil
}

// killGroup kills the process group that cmd leads.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// status describes how a program ended, without anything it printed.
func status(ee *exec.ExitError) string {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exited with status %d", ee.ExitCode())
}

// firstLine counts the bytes of the first line written to it and keeps
// nothing.
type firstLine struct {
	n    int
	done bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	if !f.done {
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			f.n += i
			f.done = true
		} else {
			f.n += len(p)
		}
	}
	return len(p), nil
}

// output is the JSON form of a program's output.
type output struct {
	Value      *string  `json:"value"`
	ExpiresAt  *string  `json:"expires_at"`
	TTLSeconds *float64 `json:"ttl_seconds"`
}

// maxTTL bounds ttl_seconds (a year), keeping the time arithmetic sane.
const maxTTL = 366 * 24 * time.Hour

// The errors of ParseOutput: fixed sentences, never the output.
var (
	errNotJSON   = errors.New(`the output looks like JSON but is not an object {"value", "expires_at" or "ttl_seconds"}`)
	errTrailing  = errors.New("the output has more after its JSON object")
	errNoValue   = errors.New(`the output's JSON object has no string "value"`)
	errBoth      = errors.New(`the output gives both "expires_at" and "ttl_seconds"`)
	errExpiresAt = errors.New(`the output's "expires_at" is not an RFC 3339 time`)
	errTTL       = errors.New(`the output's "ttl_seconds" must be positive and at most a year`)
)

// ParseOutput returns the value in a program's output out and when it
// expires (zero: never), as of now. Output whose first byte (after
// blanks) is '{' must be a JSON object with a string "value" and at most
// one of "expires_at" (RFC 3339) and "ttl_seconds" (positive), and nothing
// else; anything else is the value itself, one trailing newline trimmed.
// Its errors never quote the output.
func ParseOutput(out []byte, now time.Time) ([]byte, time.Time, error) {
	trimmed := bytes.TrimLeft(out, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		b := bytes.TrimSuffix(out, []byte("\n"))
		return bytes.TrimSuffix(b, []byte("\r")), time.Time{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var o output
	if err := dec.Decode(&o); err != nil {
		return nil, time.Time{}, errNotJSON
	}
	if rest := bytes.TrimSpace(trimmed[dec.InputOffset():]); len(rest) > 0 {
		return nil, time.Time{}, errTrailing
	}
	// encoding/json matches names in any case: hold them to their spelling.
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &keys); err != nil {
		return nil, time.Time{}, errNotJSON
	}
	for k := range keys {
		if k != "value" && k != "expires_at" && k != "ttl_seconds" {
			return nil, time.Time{}, errNotJSON
		}
	}
	if o.Value == nil {
		return nil, time.Time{}, errNoValue
	}
	var expires time.Time
	switch {
	case o.ExpiresAt != nil && o.TTLSeconds != nil:
		return nil, time.Time{}, errBoth
	case o.ExpiresAt != nil:
		t, err := time.Parse(time.RFC3339, *o.ExpiresAt)
		if err != nil {
			return nil, time.Time{}, errExpiresAt
		}
		expires = t
	case o.TTLSeconds != nil:
		ttl := *o.TTLSeconds
		if !(ttl > 0) || ttl > maxTTL.Seconds() {
			return nil, time.Time{}, errTTL
		}
		expires = now.Add(time.Duration(ttl * float64(time.Second)))
	}
	return []byte(*o.Value), expires, nil
}

var _ rules.Kind = (*Kind)(nil)
