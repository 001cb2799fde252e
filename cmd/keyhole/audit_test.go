package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/audit"
)

// update rewrites the golden files in testdata.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var auditT0 = time.Date(2025, 11, 26, 10, 30, 0, 123_000_000, time.UTC)

// auditRecords are records of every shape the tail formats.
func auditRecords() []*audit.Record {
	at := func(ms int) time.Time { return auditT0.Add(time.Duration(ms) * time.Millisecond) }
	return []*audit.Record{
		{Time: at(0), RequestID: "1", Agent: "billing", Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges", Status: 200, Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Duration: 41200 * time.Microsecond, BytesOut: 1532},
		{Time: at(1), RequestID: "2", Agent: "billing", Method: "POST", Scheme: "https", Host: "evil.example", Port: 443, Path: "/v1/charges", Status: 403, Decision: audit.Deny, Reason: "host_not_allowed", Secrets: []string{"STRIPE_LIVE"}, Duration: 210 * time.Microsecond},
		{Time: at(2), RequestID: "3", Agent: "scraper", Method: "GET", Scheme: "https", Host: "pypi.org", Port: 443, Path: "/simple/requests/", Status: 200, Decision: audit.Allow, Scrubbed: 2, Duration: 1500 * time.Millisecond},
		{Time: at(3), RequestID: "4", Method: "CONNECT", Scheme: "https", Host: "10.0.0.1", Port: 443, Status: 403, Decision: audit.Deny, Reason: "private_address", Duration: 50 * time.Microsecond},
		{Time: at(4), RequestID: "5", Agent: "ci", Method: "GET", Scheme: "http", Host: "localhost", Port: 8080, Path: "/health", Status: 200, Decision: audit.Allow, Duration: 3 * time.Millisecond},
		{Time: at(5), RequestID: "6", Agent: "ci", Method: "GET", Scheme: "https", Host: "::1", Port: 443, Path: "/", Status: 502, Decision: audit.Deny, Reason: "upstream_unreachable", Error: "connection refused", Duration: 12 * time.Millisecond},
		{Time: at(6), RequestID: "7", Agent: "evil\x1b[2J", Method: "GET", Scheme: "https", Host: "api.github.com", Port: 443, Path: "/a b/\u202egnp.exe", Status: 200, Decision: audit.Allow, Secrets: []string{"GITHUB", "STRIPE_LIVE"}, Duration: 7 * time.Millisecond},
	}
}

// auditLog writes the records and reload events to a file, one JSON line
// each, as the proxy does, and returns its path.
func auditLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := audit.New(f)
	for _, r := range auditRecords() {
		if err := l.Log(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Event(auditT0.Add(time.Second), "reload", slog.Bool("ok", true)); err != nil {
		t.Fatal(err)
	}
	if err := l.Event(auditT0.Add(2*time.Second), "reload", slog.Bool("ok", false), slog.Any("errors", []string{"keyhole.yaml:3: secrets.X.hosts: must not be empty", "keyhole.yaml:9: egress.default: want allow or deny"})); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditLineFormat(t *testing.T) {
	path := auditLog(t)
	for _, color := range []bool{false, true} {
		name := "audit-tail.golden"
		if color {
			name = "audit-tail-color.golden"
		}
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			p := &audit.Printer{W: &out, Color: color, Loc: time.UTC}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := audit.Scan(f, func(e audit.Entry) error { return p.Print(&e) }); err != nil {
				t.Fatal(err)
			}
			if !color && bytes.Contains(out.Bytes(), []byte("\x1b")) {
				t.Error("output holds an escape character")
			}
			if bytes.Contains(out.Bytes(), []byte("\u202e")) {
				t.Error("output holds a bidi override from the log")
			}
			auditGolden(t, name, out.Bytes())
		})
	}
}

func auditGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

func TestParseSince(t *testing.T) {
	now := auditT0
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "10m", want: now.Add(-10 * time.Minute)},
		{in: "2026-11-26T09:00:00Z", want: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)},
		{in: "-5m", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "yesterday", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSince(tc.in, now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if !got.Equal(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// auditEnv gives parseSettings a state dir and no audit log setting.
func auditEnv(t *testing.T) {
	t.Setenv("KEYHOLE_STATE_DIR", t.TempDir())
	t.Setenv("KEYHOLE_AUDIT_LOG", "")
	os.Unsetenv("KEYHOLE_AUDIT_LOG")
	t.Setenv("NO_COLOR", "")
}

// auditMarkers tell the lines of auditLog's records apart.
var auditMarkers = []string{
	"api.stripe.com/v1/charges", "evil.example", "pypi.org", "10.0.0.1:443", "localhost:8080", "[::1]",
	"api.github.com", "reload ok", "reload FAILED", "/early0", "/early1", "/early2", "/new",
}

// auditLines names the records in tail's output by their markers, one
// for each line ("?" for a line without one).
func auditLines(out string) []string {
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		name := "?"
		for _, m := range auditMarkers {
			if strings.Contains(line, m) {
				name = m
				break
			}
		}
		got = append(got, name)
	}
	return got
}

func TestAuditTail(t *testing.T) {
	auditEnv(t)
	path := auditLog(t)
	all := []string{"api.stripe.com/v1/charges", "evil.example", "pypi.org", "10.0.0.1:443", "localhost:8080", "[::1]", "api.github.com", "reload ok", "reload FAILED"}
	tests := []struct {
		name string
		args []string
		env  string // KEYHOLE_AUDIT_LOG
		want []string
	}{
		{"FILE argument", []string{"tail", path}, "", all},
		{"KEYHOLE_AUDIT_LOG", []string{"tail"}, path, all},
		{"--audit-log flag", []string{"tail", "--audit-log", path}, "-", all},
		{"FILE before flags", []string{"tail", path, "--agent", "billing"}, "", []string{"api.stripe.com/v1/charges", "evil.example"}},
		{"agent", []string{"tail", "--agent", "ci", path}, "", []string{"localhost:8080", "[::1]"}},
		{"host pattern", []string{"tail", "--host", "*.stripe.com", path}, "", []string{"api.stripe.com/v1/charges"}},
		{"secret", []string{"tail", "--secret", "GITHUB", path}, "", []string{"api.github.com"}},
		{"denied", []string{"tail", "--denied", path}, "", []string{"evil.example", "10.0.0.1:443", "[::1]"}},
		{"since a time", []string{"tail", "--since", "2025-11-26T10:30:01Z", path}, "", []string{"reload ok", "reload FAILED"}},
		{"since long ago", []string{"tail", "--since", "1000000h", path}, "", all},
		{"since just now", []string{"tail", "--since", "1ns", path}, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("KEYHOLE_AUDIT_LOG", tc.env)
			}
			var stdout, stderr bytes.Buffer
			if err := runAudit(t.Context(), tc.args, &stdout, &stderr); err != nil {
				t.Fatalf("runAudit: %v (stderr %s)", err, stderr.String())
			}
			if got := auditLines(stdout.String()); strings.Join(got, " | ") != strings.Join(tc.want, " | ") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: got %q, want nothing", stderr.String())
			}
		})
	}
}

func TestAuditTailJSON(t *testing.T) {
	auditEnv(t)
	path := auditLog(t)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	var stdout, stderr bytes.Buffer
	if err := runAudit(t.Context(), []string{"tail", "--json", "--denied", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if want := lines[1] + lines[3] + lines[5]; stdout.String() != want {
		t.Errorf("got %s, want %s", stdout.String(), want)
	}
}

func TestAuditTailSkipsMalformed(t *testing.T) {
	auditEnv(t)
	path := auditLog(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "not json\n{\"agent\":\"x\"}\n")
	f.Close()
	var stdout, stderr bytes.Buffer
	if err := runAudit(t.Context(), []string{"tail", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if got, want := len(auditLines(stdout.String())), 9; got != want {
		t.Errorf("lines: got %v, want %v", got, want)
	}
	if want := "skipped 2 lines"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr: got %q, want it to contain %q", stderr.String(), want)
	}
}

func TestAuditErrors(t *testing.T) {
	auditEnv(t)
	path := auditLog(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", nil, "want tail, summary or verify"},
		{"unknown subcommand", []string{"head"}, `unknown command "head"`},
		{"no file", []string{"tail"}, "the audit log goes to stdout; set KEYHOLE_AUDIT_LOG to a file or pass FILE"},
		{"stdout", []string{"summary", "-"}, "the audit log goes to stdout"},
		{"two files", []string{"tail", path, path}, "want at most one FILE"},
		{"missing file", []string{"tail", path + ".nope"}, "no such file"},
		{"missing file, following", []string{"tail", "-f", path + ".nope"}, "no such file"},
		{"bad since", []string{"tail", "--since", "yesterday", path}, "failed"},
		{"follow is not a summary flag", []string{"summary", "-f", path}, "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runAudit(t.Context(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAuditSummary(t *testing.T) {
	auditEnv(t)
	path := auditLog(t)
	var stdout, stderr bytes.Buffer
	if err := runAudit(t.Context(), []string{"summary", "--agent", "billing", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"requests 2: allowed 1, denied 1", "billing", "host_not_allowed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("got %s, want it to contain %q", stdout.String(), want)
		}
	}
	if strings.Contains(stdout.String(), "scraper") {
		t.Errorf("got %s, want no other agent", stdout.String())
	}

	stdout.Reset()
	if err := runAudit(t.Context(), []string{"summary", "--json", path}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"requests": 7`, `"denied": 3`, `"name": "reload"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("got %s, want it to contain %q", stdout.String(), want)
		}
	}
}

// auditSyncBuffer is a bytes.Buffer that a follower goroutine may write
// while the test reads it.
type auditSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *auditSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *auditSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAuditTailFollow(t *testing.T) {
	auditEnv(t)
	tests := []struct {
		name string
		args []string
		want []string // before the appended line
	}{
		{"last 10 lines without filters", nil, []string{"pypi.org", "10.0.0.1:443", "localhost:8080", "[::1]", "api.github.com", "reload ok", "reload FAILED", "/early0", "/early1", "/early2"}},
		{"every match with a filter", []string{"--agent", "billing"}, []string{"api.stripe.com/v1/charges", "evil.example"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := auditLog(t)
			// Three more records make the log 12 lines long.
			l, closer, err := audit.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			for i := range 3 {
				if err := l.Log(&audit.Record{Time: auditT0, Agent: "early", Host: "a.example", Path: fmt.Sprintf("/early%d", i), Decision: audit.Allow}); err != nil {
					t.Fatal(err)
				}
			}
			closer.Flush() // records are written in batches; these must be in the file before tail starts
			ctx, cancel := context.WithCancel(t.Context())
			var stdout auditSyncBuffer
			var stderr bytes.Buffer
			done := make(chan error, 1)
			go func() {
				done <- runAudit(ctx, append(append([]string{"tail", "-f"}, tc.args...), path), &stdout, &stderr)
			}()
			waitFor := func(want []string) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for {
					got := auditLines(stdout.String())
					if strings.Join(got, " | ") == strings.Join(want, " | ") {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("got %q, want %q", got, want)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			waitFor(tc.want)
			if err := l.Log(&audit.Record{Time: time.Now(), Agent: "billing", Host: "api.stripe.com", Path: "/new", Decision: audit.Allow}); err != nil {
				t.Fatal(err)
			}
			waitFor(append(tc.want, "/new"))
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("runAudit: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("tail -f did not stop when its context ended")
			}
		})
	}
}

func TestColorful(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	// /dev/null is a character device, as a terminal is.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	tests := []struct {
		name          string
		w             io.Writer
		noColor, term string
		want          bool
	}{
		{"buffer", &bytes.Buffer{}, "", "xterm", false},
		{"regular file", file, "", "xterm", false},
		{"character device", null, "", "xterm", true},
		{"NO_COLOR", null, "1", "xterm", false},
		{"TERM=dumb", null, "", "dumb", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NO_COLOR", tc.noColor)
			t.Setenv("TERM", tc.term)
			if got := colorful(tc.w); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
