package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
)

// at is the time of every test record: 10:30:00.123456789 in UTC+1.
var at = time.Date(2026, 11, 26, 11, 30, 0, 123456789, time.FixedZone("CET", 3600))

// requestKeys are the keys of every request record, as the contract lists
// them; "error" comes only when set.
var requestKeys = []string{
	"time", "request_id", "agent", "token_id", "method", "scheme", "host", "port", "path",
	"status", "decision", "reason", "secrets", "scrubbed", "duration_ms", "bytes_out",
}

var timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// line is a request record as read back from JSON.
type line struct {
	Time       string   `json:"time"`
	RequestID  string   `json:"request_id"`
	Agent      string   `json:"agent"`
	TokenID    string   `json:"token_id"`
	Method     string   `json:"method"`
	Scheme     string   `json:"scheme"`
	Host       string   `json:"host"`
	Port       int      `json:"port"`
	Path       string   `json:"path"`
	Status     int      `json:"status"`
	Decision   string   `json:"decision"`
	Reason     string   `json:"reason"`
	Secrets    []string `json:"secrets"`
	Scrubbed   int      `json:"scrubbed"`
	DurationMS float64  `json:"duration_ms"`
	BytesOut   int64    `json:"bytes_out"`
	Error      string   `json:"error"`
	TokenIDs   []string `json:"token_ids"`
	Verified   *bool    `json:"token_verified"`
}

// parse decodes one JSON line strictly, returning its keys too.
func parse(t *testing.T, b []byte) (line, []string) {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("line %q: %v", b, err)
	}
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("line %q: %v", b, err)
	}
	return l, slices.Sorted(maps.Keys(keys))
}

func TestLog(t *testing.T) {
	tests := []struct {
		name     string
		rec      audit.Record
		want     line
		wantKeys []string
	}{
		{
			name: "allowed",
			rec: audit.Record{Time: at, RequestID: "abc-1", Agent: "billing", TokenID: "task-42", Method: "POST",
				Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges", Status: 200,
				Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 2,
				Duration: 41200 * time.Microsecond, BytesOut: 1532},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-1", Agent: "billing", TokenID: "task-42",
				Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges",
				Status: 200, Decision: "allow", Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 2,
				DurationMS: 41.2, BytesOut: 1532},
			wantKeys: requestKeys,
		},
		{
			name: "denied without secrets",
			rec: audit.Record{Time: at, RequestID: "abc-2", Agent: "anonymous", Method: "GET", Scheme: "https",
				Host: "evil.example", Port: 443, Path: "/", Status: 403, Decision: audit.Deny, Reason: "host_not_allowed"},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-2", Agent: "anonymous", Method: "GET",
				Scheme: "https", Host: "evil.example", Port: 443, Path: "/", Status: 403, Decision: "deny",
				Reason: "host_not_allowed", Secrets: []string{}},
			wantKeys: requestKeys,
		},
		{
			name: "upstream error",
			rec: audit.Record{Time: at.UTC(), RequestID: "abc-3", Agent: "ci", Method: "GET", Scheme: "https",
				Host: "api.github.com", Port: 8443, Path: "/repos", Status: 502, Decision: audit.Deny,
				Reason: "upstream_unreachable", Secrets: []string{"A", "B"}, Duration: 1500 * time.Millisecond,
				Error: "upstream_unreachable"},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-3", Agent: "ci", Method: "GET",
				Scheme: "https", Host: "api.github.com", Port: 8443, Path: "/repos", Status: 502, Decision: "deny",
				Reason: "upstream_unreachable", Secrets: []string{"A", "B"}, DurationMS: 1500,
				Error: "upstream_unreachable"},
			wantKeys: slices.Sorted(slices.Values(append(slices.Clone(requestKeys), "error"))),
		},
		{
			name: "attenuated token that did not verify",
			rec: audit.Record{Time: at, RequestID: "abc-5", Agent: "billing", TokenID: "child-1",
				TokenIDs: []string{"task-43", "child-1"}, TokenUnverified: true, Method: "GET", Scheme: "https",
				Host: "api.stripe.com", Port: 443, Path: "/", Status: 407, Decision: audit.Deny, Reason: "proxy_auth_required"},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-5", Agent: "billing", TokenID: "child-1",
				TokenIDs: []string{"task-43", "child-1"}, Verified: new(bool), Method: "GET", Scheme: "https",
				Host: "api.stripe.com", Port: 443, Path: "/", Status: 407, Decision: "deny",
				Reason: "proxy_auth_required", Secrets: []string{}},
			wantKeys: append(slices.Clone(requestKeys), "token_ids", "token_verified"),
		},
		{
			name: "a root token has no token_ids",
			rec: audit.Record{Time: at, RequestID: "abc-6", Agent: "billing", TokenID: "task-43",
				TokenIDs: []string{"task-43"}, Method: "GET", Scheme: "https", Host: "api.stripe.com", Port: 443,
				Path: "/", Status: 200, Decision: audit.Allow},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-6", Agent: "billing", TokenID: "task-43",
				Method: "GET", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/", Status: 200,
				Decision: "allow", Secrets: []string{}},
			wantKeys: requestKeys,
		},
		{
			name: "quotes and newlines stay on one line",
			rec: audit.Record{Time: at, RequestID: "abc-4", Agent: "a\"b", Method: "GET", Scheme: "http",
				Host: "x.example", Port: 80, Path: "/a\nb\u2028c", Status: 200, Decision: audit.Allow},
			want: line{Time: "2026-11-26T10:30:00.123Z", RequestID: "abc-4", Agent: "a\"b", Method: "GET",
				Scheme: "http", Host: "x.example", Port: 80, Path: "/a\nb\u2028c", Status: 200, Decision: "allow",
				Secrets: []string{}},
			wantKeys: requestKeys,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := audit.New(&buf).Log(&tc.rec); err != nil {
				t.Fatalf("Log: %v", err)
			}
			out := buf.Bytes()
			if bytes.Count(out, []byte("\n")) != 1 || !bytes.HasSuffix(out, []byte("\n")) {
				t.Fatalf("got %q, want one line", out)
			}
			if !bytes.Contains(out, []byte(`"secrets":[`)) {
				t.Errorf("got %s, want secrets as a JSON array", out)
			}
			got, keys := parse(t, out)
			if !slices.Equal(keys, slices.Sorted(slices.Values(tc.wantKeys))) {
				t.Errorf("got keys %v, want %v", keys, tc.wantKeys)
			}
			if !timeRE.MatchString(got.Time) {
				t.Errorf("got time %q, want UTC with milliseconds ending in Z", got.Time)
			}
			// DeepEqual tells a null secrets list from an empty one.
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLogZeroTime(t *testing.T) {
	var buf bytes.Buffer
	before := time.Now().Truncate(time.Millisecond)
	if err := audit.New(&buf).Log(&audit.Record{RequestID: "r"}); err != nil {
		t.Fatalf("Log: %v", err)
	}
	after := time.Now()
	got, _ := parse(t, buf.Bytes())
	ts, err := time.Parse(time.RFC3339Nano, got.Time)
	if err != nil || ts.Before(before) || ts.After(after) {
		t.Errorf("got time %q (%v), want the time of the call, between %v and %v", got.Time, err, before, after)
	}
}

func TestEvent(t *testing.T) {
	var buf bytes.Buffer
	l := audit.New(&buf)
	if err := l.Event(at, "reload", slog.String("file", "keyhole.yaml"), slog.Int("secrets", 3)); err != nil {
		t.Fatalf("Event: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("line %q: %v", buf.Bytes(), err)
	}
	want := map[string]any{"time": "2026-11-26T10:30:00.123Z", "event": "reload", "file": "keyhole.yaml", "secrets": 3.0}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// serialWriter fails the test, through the race detector, if two Writes
// overlap, and checks that each Write is one whole JSON line.
type serialWriter struct {
	t     *testing.T
	lines [][]byte
}

func (w *serialWriter) Write(p []byte) (int, error) {
	if !bytes.HasSuffix(p, []byte("\n")) || bytes.Count(p, []byte("\n")) != 1 || !json.Valid(p) {
		w.t.Errorf("got a write of %q, want one JSON line", p)
	}
	w.lines = append(w.lines, bytes.Clone(p))
	return len(p), nil
}

// TestLogConcurrent has 50 goroutines log at once; run it with -race.
func TestLogConcurrent(t *testing.T) {
	const writers, each = 50, 200
	w := &serialWriter{t: t}
	l := audit.New(w)
	ids := audit.NewIDs()
	done := make(chan struct{})
	for g := range writers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				rec := audit.Record{Time: at, RequestID: ids.Next(), Agent: "agent", Method: "GET",
					Scheme: "https", Host: "api.example.com", Port: 443, Path: strings.Repeat("/p", g), Status: 200,
					Decision: audit.Allow, Secrets: []string{"A"}}
				if err := l.Log(&rec); err != nil {
					t.Errorf("Log: %v", err)
				}
			}
		}()
	}
	for range writers {
		<-done
	}
	if len(w.lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(w.lines), writers*each)
	}
	seen := make(map[string]bool, len(w.lines))
	for _, b := range w.lines {
		got, keys := parse(t, b)
		if !slices.Equal(keys, slices.Sorted(slices.Values(requestKeys))) {
			t.Fatalf("got keys %v, want %v", keys, requestKeys)
		}
		if seen[got.RequestID] {
			t.Fatalf("request id %s logged twice", got.RequestID)
		}
		seen[got.RequestID] = true
	}
	if got := l.Failures(); got != 0 {
		t.Errorf("got %d failures, want 0", got)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestFailures(t *testing.T) {
	l := audit.New(failingWriter{})
	for i := range 3 {
		if err := l.Log(&audit.Record{Time: at}); err == nil {
			t.Errorf("Log %d: got no error, want the writer's", i)
		}
	}
	if err := l.Event(at, "reload"); err == nil {
		t.Error("Event: got no error, want the writer's")
	}
	if got := l.Failures(); got != 4 {
		t.Errorf("got %d failures, want 4", got)
	}
}

func TestNilLogger(t *testing.T) {
	var l *audit.Logger
	if err := l.Log(&audit.Record{Time: at}); err != nil {
		t.Errorf("Log: got %v, want nil", err)
	}
	if err := l.Event(at, "reload"); err != nil {
		t.Errorf("Event: got %v, want nil", err)
	}
	if got := l.Failures(); got != 0 {
		t.Errorf("Failures: got %d, want 0", got)
	}
}

// scanLines returns the lines of b.
func scanLines(b []byte) []string {
	var out []string
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}
