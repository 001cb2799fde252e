package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"keyhole/secret"
)

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"plain":        `"plain"`,
		`q"b\`:         `"q\"b\\"`,
		"a\nb\r\tc":    `"a\nb\r\tc"`,
		"\x00\x1f":     `"\u0000\u001f"`,
		"<a&b>":        `"<a&b>"`,
		"caf\xc3\xa9":  `"café"`,
		"bad\xffutf8":  `"bad\ufffdutf8"`,
		"line\u2028x":  `"line\u2028x"`,
		"para\u2029x":  `"para\u2029x"`,
		"\u202egnp.xe": "\"\u202egnp.xe\"",
	}
	for in, want := range cases {
		t.Run(want, func(t *testing.T) {
			if got := string(appendJSONString(nil, in)); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// FuzzAppendJSONString checks that every string encodes to one line of
// valid JSON that decodes to the string (invalid UTF-8 as U+FFFD).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\n\x00", "\xff\xfe", "\u2028", "é<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		if strings.ContainsAny(string(out), "\n\r") {
			t.Fatalf("%q encodes to more than one line", s)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, out, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if !utf8.ValidString(s) {
			// Each invalid byte becomes its own U+FFFD.
			var b strings.Builder
			for i := 0; i < len(s); {
				r, n := utf8.DecodeRuneInString(s[i:])
				b.WriteRune(r)
				i += n
			}
			want = b.String()
		}
		if back != want {
			t.Fatalf("%q round-trips to %q, want %q", s, back, want)
		}
	})
}

// TestLogMatchesHandle checks that Log writes, byte for byte, the line
// the audit handler writes for a slog record holding the Record as its one
// attribute (as Log made before it skipped the slog record), plain and
// chained.
func TestLogMatchesHandle(t *testing.T) {
	key := secret.FromString("0123456789abcdef0123456789abcdef")
	recs := []*Record{
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 123e6, time.UTC), RequestID: "id-1", Agent: "billing", TokenID: "t\"1",
			TokenIDs: []string{"root", "t\"1"}, TokenUnverified: true, Method: "POST", Scheme: "https", Host: "api.stripe.com",
			Port: 443, Path: "/v1/charges\n", Status: 200, Decision: Allow, Secrets: []string{"A", "B"}, Scrubbed: 3,
			Duration: 41200 * time.Microsecond, BytesOut: 1532, Error: "e", Session: "s", Proto: "h2", Budget: "b",
			Captured: []string{"C"}, CaptureError: "not_json"},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.FixedZone("X", 3600)), RequestID: "id-2", Decision: Deny},
	}
	for _, chained := range []bool{false, true} {
		var fast, slow bytes.Buffer
		lf, ls := New(&fast), New(&slow)
		if chained {
			lf, ls = NewChained(&fast, key, "prev"), NewChained(&slow, key, "prev")
		}
		for _, r := range recs {
			if err := lf.Log(r); err != nil {
				t.Fatal(err)
			}
			rec := slog.NewRecord(r.Time, slog.LevelInfo, "", 0)
			rec.AddAttrs(slog.Any("", r))
			if err := ls.handle(rec); err != nil {
				t.Fatal(err)
			}
		}
		if fast.String() != slow.String() {
			t.Errorf("chained %v: Log wrote\n%s\nthe handler\n%s", chained, fast.String(), slow.String())
		}
	}
}

// TestRecordFastPathMatchesLogValue checks that the direct encoding of a
// Record says exactly what its LogValue says through slog's own JSON
// handler.
func TestRecordFastPathMatchesLogValue(t *testing.T) {
	recs := []*Record{
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 123e6, time.UTC), RequestID: "id-1", Agent: "billing", TokenID: "t\"1",
			Method: "POST", Scheme: "https", Host: "api.stripe.com", Port: 443, Path: "/v1/charges\n", Status: 200,
			Decision: Allow, Secrets: []string{"A", "B"}, Scrubbed: 3, Duration: 41200 * time.Microsecond, BytesOut: 1532},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-2", Decision: Deny, Reason: "host_not_allowed",
			Status: 403, Error: "upstream: reset", Duration: 7},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-3", Agent: "billing", TokenID: "child",
			TokenIDs: []string{"task-43", "child"}, TokenUnverified: true, Decision: Deny, Reason: "proxy_auth_required", Status: 407},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-4", TokenID: "root", TokenIDs: []string{"root"}},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-5", Decision: Allow, Status: 200, Captured: []string{"KEY_0a1b2c3d"}},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-6", Decision: Deny, Status: 502, Reason: "capture_failed", CaptureError: "not_json"},
		{Time: time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC), RequestID: "id-7", Agent: "billing", Decision: Deny,
			Reason: "budget_exceeded", Status: 429, Secrets: []string{"STRIPE_LIVE"}, Budget: "budgets[0] STRIPE_LIVE:100/1h"},
	}
	for _, r := range recs {
		t.Run(r.RequestID, func(t *testing.T) {
			var fast, generic bytes.Buffer
			if err := New(&fast).Log(r); err != nil {
				t.Fatal(err)
			}
			h := slog.NewJSONHandler(&generic, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.LevelKey || a.Key == slog.MessageKey || a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})
			rec := slog.NewRecord(r.Time, slog.LevelInfo, "", 0)
			rec.AddAttrs(slog.Any("", r))
			if err := h.Handle(context.Background(), rec); err != nil {
				t.Fatal(err)
			}
			var a, g map[string]any
			if err := json.Unmarshal(fast.Bytes(), &a); err != nil {
				t.Fatalf("fast path wrote invalid JSON %s: %v", fast.Bytes(), err)
			}
			if err := json.Unmarshal(generic.Bytes(), &g); err != nil {
				t.Fatal(err)
			}
			delete(a, "time")
			if !reflect.DeepEqual(a, g) {
				t.Errorf("fast path %v\nLogValue %v", a, g)
			}
		})
	}
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 26, 10, 30, 0, 123456789, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("x", 3600)),
		time.Date(999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// TestAppendTimeMinutes checks the text appendTime keeps of the last
// minute against time's own formatting, second by second across minute,
// day and year boundaries, back and forth, and from goroutines at once.
func TestAppendTimeMinutes(t *testing.T) {
	starts := []time.Time{
		time.Date(2026, 12, 31, 23, 58, 30, 999e6, time.UTC),
		time.Date(2028, 2, 28, 23, 59, 0, 1e6, time.FixedZone("x", -7*3600)),
		time.Unix(0, 0),
		time.Date(9999, 12, 31, 23, 59, 0, 0, time.UTC),
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				start := starts[(i+g)%len(starts)]
				tm := start.Add(time.Duration(i*7919%200) * time.Second / 2)
				want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
				if got := string(appendTime(nil, tm)); got != want {
					t.Errorf("got %s, want %s", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
