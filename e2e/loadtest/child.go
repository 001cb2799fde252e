package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"keyhole/demo"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyLine matches the line keyhole (and the baseline, in the same slog
// text format) prints on stderr once it accepts connections.
var readyLine = regexp.MustCompile(`msg="[a-z]+ is listening" addr=(\S+)`)

// child is a proxy running in its own process group, so that the tool can
// read its CPU and memory from /proc and stop it with everything it
// started.
type child struct {
	name    string
	cmd     *exec.Cmd
	Addr    string // where it listens, from its ready line
	done    chan struct{}
	exitErr error
	log     *stderrLog
}

// startChild runs path with args and env, and waits up to 30s for its
// ready line. The child gets its own process group and SIGKILL if the tool
// dies first.
func startChild(ctx context.Context, name, path string, args, env []string, secret string) (*child, error) {
	return startChildReady(ctx, name, path, args, env, secret, readyLine)
}

// startChildReady is startChild for a child whose ready line is ready,
// whose first submatch is the address it listens on. When the proxies are
// pinned (pin.go), the child runs under taskset on the proxies' CPU.
func startChildReady(ctx context.Context, name, path string, args, env []string, secret string, ready *regexp.Regexp) (*child, error) {
	c := &child{name: name, done: make(chan struct{}), log: &stderrLog{secret: secret, ready: ready}}
	if proxyCPU != "" {
		path, args = "taskset", append([]string{"-c", proxyCPU, path}, args...)
	}
	c.cmd = exec.Command(path, args...)
	c.cmd.Env = env
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	c.cmd.Stderr = pw
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		pw.Close()
		close(c.done)
	}()
	addr := make(chan string, 1)
	go c.log.scan(pr, addr)
	select {
	case c.Addr = <-addr:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("start %s: exited before it was ready (%v); stderr:\n%s", name, c.exitErr, c.log.head())
	case <-ctx.Done():
		c.Stop()
		return nil, fmt.Errorf("start %s: %w", name, ctx.Err())
	case <-time.After(30 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("start %s: not ready after 30s; stderr:\n%s", name, c.log.head())
	}
}

// Pid returns the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// Stop sends SIGTERM to the child's process group, and SIGKILL if it has
// not exited 12s later (keyhole drains for at most 10s). It returns the
// child's exit error, nil for a clean exit.
// Stopping a child that has exited only returns its exit error.
func (c *child) Stop() error {
	pgid := -c.cmd.Process.Pid
	select {
	case <-c.done:
	default:
		_ = syscall.Kill(pgid, syscall.SIGTERM)
	}
	select {
	case <-c.done:
	case <-time.After(12 * time.Second):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("stop %s: killed after 12s without exiting on SIGTERM", c.name)
	}
	var ee *exec.ExitError
	if errors.As(c.exitErr, &ee) && !ee.Exited() {
		return nil // ended by the signal it was sent
	}
	if c.exitErr != nil {
		return fmt.Errorf("stop %s: %w", c.name, c.exitErr)
	}
	return nil
}

// stderrLog keeps what a child writes to stderr: the line count, the first
// lines (bounded), and whether any line held the secret value (by line
// number and offset only, never the bytes).
type stderrLog struct {
	secret string
	ready  *regexp.Regexp // the ready line; lines before it are not counted
	tee    bool           // copy every line to the diagnosis log (-keyhole-log)

	mu    sync.Mutex
	lines int
	first []string
	leaks []string
}

// maxKept bounds how many stderr lines are kept for the report.
const maxKept = 8

func (l *stderrLog) scan(r io.Reader, ready chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := l.ready.FindStringSubmatch(line); m != nil {
			select {
			case ready <- m[1]:
				l.reset()
				continue
			default:
			}
		}
		l.add(line)
	}
	_, _ = io.Copy(io.Discard, r)
}

func (l *stderrLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines++
	if i := strings.Index(line, l.secret); l.secret != "" && i >= 0 {
		l.leaks = append(l.leaks, fmt.Sprintf("stderr line %d holds the secret BENCH at offset %d", l.lines, i))
		line = "(line withheld: it holds the secret)"
	}
	if l.tee {
		diag.line("%s", line)
	}
	if len(l.first) < maxKept {
		l.first = append(l.first, line)
	}
}

// teeToDiag copies the lines from now on to the diagnosis log.
func (l *stderrLog) teeToDiag() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tee = true
}

// reset forgets the lines counted so far (those before the ready line),
// keeping any leak found in them.
func (l *stderrLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines, l.first = 0, nil
}

// Lines returns how many lines the child has written to stderr, not
// counting its ready line.
func (l *stderrLog) Lines() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

// head returns the first lines kept.
func (l *stderrLog) head() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.first, "\n")
}

// Leaks returns where the secret appeared, if anywhere.
func (l *stderrLog) Leaks() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.leaks...)
}

// diagLog is the -keyhole-log file: keyhole's stderr lines and the
// tool's round starts, each with the time it was seen.
type diagLog struct {
	mu sync.Mutex
	w  io.Writer // nil: no log
}

// diag is the run's diagnosis log.
var diag diagLog

func (d *diagLog) set(w io.Writer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.w = w
}

// line writes one timestamped line, if the log is on.
func (d *diagLog) line(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w != nil {
		fmt.Fprintf(d.w, "%s %s\n", time.Now().Format("15:04:05.000000"), fmt.Sprintf(format, args...))
	}
}

// baseEnv is the tool's environment without proxy or KEYHOLE_ settings,
// which would redirect or reconfigure the children.
func baseEnv() []string { return demo.CleanEnv() }
