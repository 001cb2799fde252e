package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
)

var readerT0 = time.Date(2026, 11, 26, 10, 30, 0, 123_000_000, time.UTC)

// readerLine is the line the writer makes for r, without its newline.
func readerLine(t *testing.T, r *audit.Record) string {
	t.Helper()
	var buf bytes.Buffer
	if err := audit.New(&buf).Log(r); err != nil {
		t.Fatalf("Log: %v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// readerEvent is the line the writer makes for an event.
func readerEvent(t *testing.T, tm time.Time, name string, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	if err := audit.New(&buf).Event(tm, name, attrs...); err != nil {
		t.Fatalf("Event: %v", err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func TestParseEntryRoundTrip(t *testing.T) {
	rec := &audit.Record{
		Time: readerT0, RequestID: "3f9a-1", Agent: "billing", TokenID: "tok1",
		Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges",
		Status: 200, Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 2,
		Duration: 41200 * time.Microsecond, BytesOut: 1532, Error: "upstream closed",
	}
	line := readerLine(t, rec)
	got, err := audit.ParseEntry([]byte(line))
	if err != nil {
		t.Fatalf("ParseEntry: %v", err)
	}
	want := audit.Entry{
		Time: readerT0, RequestID: "3f9a-1", Agent: "billing", TokenID: "tok1",
		Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges",
		Status: 200, Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 2,
		Duration: 41200 * time.Microsecond, BytesOut: 1532, Error: "upstream closed",
		Raw: []byte(line),
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("Time: got %v, want %v", got.Time, want.Time)
	}
	got.Time = want.Time
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseEntryEvents(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name string
		line string
		want audit.Entry
	}{
		{
			name: "reload ok",
			line: readerEvent(t, readerT0, "reload", slog.Bool("ok", true)),
			want: audit.Entry{Event: "reload", OK: &yes},
		},
		{
			name: "reload failed",
			line: readerEvent(t, readerT0, "reload", slog.Bool("ok", false), slog.Any("errors", []string{"a.yaml:3: x", "a.yaml:4: y"})),
			want: audit.Entry{Event: "reload", OK: &no, Errors: []string{"a.yaml:3: x", "a.yaml:4: y"}},
		},
		{
			name: "event without ok and with unknown keys",
			line: readerEvent(t, readerT0, "start", slog.String("version", "1")),
			want: audit.Entry{Event: "start"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := audit.ParseEntry([]byte(tc.line))
			if err != nil {
				t.Fatalf("ParseEntry: %v", err)
			}
			tc.want.Time, tc.want.Raw = got.Time, []byte(tc.line)
			if !got.Time.Equal(readerT0) {
				t.Errorf("Time: got %v, want %v", got.Time, readerT0)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseEntryMalformed(t *testing.T) {
	// The value sk_live_x stands for anything a damaged line may hold: no
	// error may repeat it.
	tests := []struct {
		name, line, want string
	}{
		{"empty", ``, "invalid JSON"},
		{"not JSON", `sk_live_x`, "invalid JSON at byte 1"},
		{"cut short", `{"time":"2026-11-26T10:30:00Z","agent":"sk_live_x`, "invalid JSON"},
		{"array", `["sk_live_x"]`, "want a JSON object, not array"},
		{"null", `null`, "time: missing"},
		{"no time", `{"agent":"sk_live_x"}`, "time: missing"},
		{"bad time", `{"time":"sk_live_x"}`, "parse entry"},
		{"status is a string", `{"time":"2026-11-26T10:30:00Z","status":"sk_live_x"}`, "status: want int, not string"},
		{"secrets is a string", `{"time":"2026-11-26T10:30:00Z","secrets":"sk_live_x"}`, "secrets: want []string, not string"},
		{"negative duration", `{"time":"2026-11-26T10:30:00Z","duration_ms":-1}`, "duration_ms: out of range"},
		{"huge duration", `{"time":"2026-11-26T10:30:00Z","duration_ms":1e300}`, "duration_ms: out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.ParseEntry([]byte(tc.line))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sk_live_x") {
				t.Errorf("error repeats a value from the line: %q", err)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	ok := true
	allow := audit.Entry{Time: readerT0, Agent: "billing", Host: "api.stripe.com", Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE", "OTHER"}}
	deny := audit.Entry{Time: readerT0, Agent: "scraper", Host: "evil.example", Decision: audit.Deny, Reason: "host_not_allowed"}
	reload := audit.Entry{Time: readerT0, Event: "reload", OK: &ok}
	tests := []struct {
		name   string
		filter audit.Filter
		entry  audit.Entry
		want   bool
	}{
		{"zero filter, request", audit.Filter{}, allow, true},
		{"token id", audit.Filter{Token: "task-43"}, audit.Entry{TokenID: "task-43"}, true},
		{"token id in the chain", audit.Filter{Token: "task-43"}, audit.Entry{TokenID: "c1", TokenIDs: []string{"task-43", "c1"}}, true},
		{"token id differs", audit.Filter{Token: "task-43"}, audit.Entry{TokenID: "task-44", TokenIDs: []string{"task-44"}}, false},
		{"token filter, event", audit.Filter{Token: "task-43"}, reload, false},
		{"zero filter, event", audit.Filter{}, reload, true},
		{"agent matches", audit.Filter{Agent: "billing"}, allow, true},
		{"agent differs", audit.Filter{Agent: "billing"}, deny, false},
		{"agent is exact", audit.Filter{Agent: "bill"}, allow, false},
		{"host exact", audit.Filter{Host: "api.stripe.com"}, allow, true},
		{"host any case", audit.Filter{Host: "API.Stripe.COM"}, allow, true},
		{"host differs", audit.Filter{Host: "stripe.com"}, allow, false},
		{"wildcard subdomain", audit.Filter{Host: "*.stripe.com"}, allow, true},
		{"wildcard not the apex", audit.Filter{Host: "*.stripe.com"}, audit.Entry{Host: "stripe.com"}, false},
		{"wildcard needs a dot", audit.Filter{Host: "*.stripe.com"}, audit.Entry{Host: "evilstripe.com"}, false},
		{"wildcard deeper", audit.Filter{Host: "*.example"}, deny, true},
		{"secret used", audit.Filter{Secret: "OTHER"}, allow, true},
		{"secret not used", audit.Filter{Secret: "STRIPE_TEST"}, allow, false},
		{"denied only, deny", audit.Filter{DeniedOnly: true}, deny, true},
		{"denied only, allow", audit.Filter{DeniedOnly: true}, allow, false},
		{"since, at", audit.Filter{Since: readerT0}, allow, true},
		{"since, before", audit.Filter{Since: readerT0.Add(time.Millisecond)}, allow, false},
		{"since, event", audit.Filter{Since: readerT0.Add(time.Millisecond)}, reload, false},
		{"event and since", audit.Filter{Since: readerT0}, reload, true},
		{"event and agent", audit.Filter{Agent: "billing"}, reload, false},
		{"event and denied", audit.Filter{DeniedOnly: true}, reload, false},
		{"all set", audit.Filter{Agent: "scraper", Host: "*.example", DeniedOnly: true, Since: readerT0}, deny, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.filter.Match(&tc.entry); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScan(t *testing.T) {
	good := func(id string) string {
		return readerLine(t, &audit.Record{Time: readerT0, RequestID: id, Decision: audit.Allow})
	}
	long := `{"time":"2026-11-26T10:30:00Z","path":"/` + strings.Repeat("a", audit.MaxLine) + `"}`
	tests := []struct {
		name        string
		input       string
		wantIDs     []string
		wantSkipped int
	}{
		{"empty", "", nil, 0},
		{"lines", good("a") + "\n" + good("b") + "\n", []string{"a", "b"}, 0},
		{"CRLF", good("a") + "\r\n" + good("b") + "\r\n", []string{"a", "b"}, 0},
		{"malformed and blank lines skipped", good("a") + "\nnot json\n\n" + good("b") + "\n", []string{"a", "b"}, 2},
		{"line longer than MaxLine", good("a") + "\n" + long + "\n" + good("b") + "\n", []string{"a", "b"}, 1},
		{"last line longer than MaxLine", good("a") + "\n" + long, []string{"a"}, 1},
		{"last line without newline", good("a") + "\n" + good("b"), []string{"a", "b"}, 0},
		{"last line cut short", good("a") + "\n" + good("b")[:20], []string{"a"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			skipped, err := audit.Scan(strings.NewReader(tc.input), func(e audit.Entry) error {
				ids = append(ids, e.RequestID)
				return nil
			})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if !reflect.DeepEqual(ids, tc.wantIDs) {
				t.Errorf("ids: got %v, want %v", ids, tc.wantIDs)
			}
			if skipped != tc.wantSkipped {
				t.Errorf("skipped: got %v, want %v", skipped, tc.wantSkipped)
			}
		})
	}
}

func TestScanStopsAtCallbackError(t *testing.T) {
	stop := errors.New("stop")
	var input strings.Builder
	for i := range 5 {
		fmt.Fprintln(&input, readerLine(t, &audit.Record{Time: readerT0, RequestID: fmt.Sprint(i)}))
	}
	n := 0
	_, err := audit.Scan(strings.NewReader(input.String()), func(audit.Entry) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("got %v, want %v", err, stop)
	}
	if n != 2 {
		t.Errorf("calls: got %v, want %v", n, 2)
	}
}

// TestScanRawIsCopied checks that an entry's Raw survives later reads,
// which reuse the reader's buffers.
func TestScanRawIsCopied(t *testing.T) {
	a, b := readerLine(t, &audit.Record{Time: readerT0, RequestID: "a"}), readerLine(t, &audit.Record{Time: readerT0, RequestID: "b"})
	var raws [][]byte
	if _, err := audit.Scan(strings.NewReader(a+"\n"+b+"\n"), func(e audit.Entry) error {
		raws = append(raws, e.Raw)
		return nil
	}); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(raws) != 2 || string(raws[0]) != a || string(raws[1]) != b {
		t.Errorf("got %q, want %q", raws, []string{a, b})
	}
}

// BenchmarkScan reads a log of typical request lines; bytes/s is the
// reading speed of "audit tail" and "audit summary".
func BenchmarkScan(b *testing.B) {
	var buf bytes.Buffer
	l := audit.New(&buf)
	for i := range 10_000 {
		if err := l.Log(&audit.Record{
			Time: readerT0, RequestID: fmt.Sprintf("3f9a0c12be47-%x", i), Agent: "billing", Method: "POST",
			Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges", Status: 200,
			Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Duration: 41200 * time.Microsecond, BytesOut: 1532,
		}); err != nil {
			b.Fatal(err)
		}
	}
	log := buf.Bytes()
	b.SetBytes(int64(len(log)))
	for b.Loop() {
		var s audit.Summarizer
		if _, err := audit.Scan(bytes.NewReader(log), func(e audit.Entry) error {
			s.Add(&e)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}
