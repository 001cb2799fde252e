package audit_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
)

// update rewrites the golden files in testdata.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// summaryGolden compares got with testdata/name, or rewrites it with
// -update.
func summaryGolden(t *testing.T, name string, got []byte) {
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

// summaryEntries is a small log: two agents, a refused host, a reload.
func summaryEntries() []audit.Entry {
	ok, failed := true, false
	at := func(s int) time.Time { return time.Date(2026, 11, 26, 10, 30, s, 0, time.UTC) }
	return []audit.Entry{
		{Time: at(0), Agent: "billing", Host: "api.stripe.com", Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}, Scrubbed: 1},
		{Time: at(1), Agent: "billing", Host: "api.stripe.com", Decision: audit.Allow, Secrets: []string{"STRIPE_LIVE"}},
		{Time: at(2), Agent: "billing", Host: "evil.example", Decision: audit.Deny, Reason: "host_not_allowed", Secrets: []string{"STRIPE_LIVE"}},
		{Time: at(3), Agent: "scraper", Host: "pypi.org", Decision: audit.Allow},
		{Time: at(4), Agent: "scraper", Host: "10.0.0.1", Decision: audit.Deny, Reason: "private_address"},
		{Time: at(5), Agent: "scraper", Host: "paste.example", Decision: audit.Deny, Reason: "egress_denied"},
		{Time: at(6), Event: "reload", OK: &ok},
		{Time: at(7), Event: "reload", OK: &failed, Errors: []string{"x"}},
		{Time: at(8), Agent: "", Host: "api.stripe.com", Decision: audit.Deny, Reason: "proxy_auth_required"},
		// Written out of order: From and To still bound the window.
		{Time: at(0).Add(-time.Minute), Agent: "evil\x1b[2Jagent", Host: "api.stripe.com", Decision: audit.Allow, Secrets: []string{"GITHUB", "STRIPE_LIVE"}},
	}
}

func TestSummarize(t *testing.T) {
	got := audit.Summarize(summaryEntries())
	want := audit.Summary{
		From:     time.Date(2026, 11, 26, 10, 29, 0, 0, time.UTC),
		To:       time.Date(2026, 11, 26, 10, 30, 8, 0, time.UTC),
		Requests: 8, Allowed: 4, Denied: 4, Scrubbed: 1,
		Agents: []audit.Count{
			{Name: "billing", Requests: 3, Denied: 1},
			{Name: "scraper", Requests: 3, Denied: 2},
			{Name: "", Requests: 1, Denied: 1},
			{Name: "evil\x1b[2Jagent", Requests: 1},
		},
		Hosts: []audit.Count{
			{Name: "api.stripe.com", Requests: 4, Denied: 1},
			{Name: "10.0.0.1", Requests: 1, Denied: 1},
			{Name: "evil.example", Requests: 1, Denied: 1},
			{Name: "paste.example", Requests: 1, Denied: 1},
			{Name: "pypi.org", Requests: 1},
		},
		Secrets: []audit.Count{
			{Name: "STRIPE_LIVE", Requests: 4, Denied: 1},
			{Name: "GITHUB", Requests: 1},
		},
		Reasons: []audit.Count{
			{Name: "egress_denied", Requests: 1, Denied: 1},
			{Name: "host_not_allowed", Requests: 1, Denied: 1},
			{Name: "private_address", Requests: 1, Denied: 1},
			{Name: "proxy_auth_required", Requests: 1, Denied: 1},
		},
		Events: []audit.EventCount{{Name: "reload", Count: 2, Failed: 1}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	got := audit.Summarize(nil)
	var b bytes.Buffer
	if err := got.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `"from"`) {
		t.Errorf("JSON %s has a from time, want none", b.String())
	}
	for _, key := range []string{`"agents": []`, `"hosts": []`, `"secrets": []`, `"reasons": []`, `"events": []`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON %s lacks %s", b.String(), key)
		}
	}
	b.Reset()
	if err := got.Write(&b); err != nil {
		t.Fatal(err)
	}
	if want := "no entries\nrequests 0: allowed 0, denied 0; secret values scrubbed from responses: 0\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestSummaryWrite(t *testing.T) {
	tests := []struct {
		name  string
		write func(audit.Summary, *bytes.Buffer) error
	}{
		{"summary.golden", func(s audit.Summary, b *bytes.Buffer) error { return s.Write(b) }},
		{"summary.json.golden", func(s audit.Summary, b *bytes.Buffer) error { return s.WriteJSON(b) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(audit.Summarize(summaryEntries()), &b); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b.Bytes(), []byte("\x1b")) {
				t.Errorf("output holds an escape character from the log")
			}
			summaryGolden(t, tc.name, b.Bytes())
		})
	}
}

// TestSummaryJSONRoundTrip checks that the JSON form reads back as the
// same Summary.
func TestSummaryJSONRoundTrip(t *testing.T) {
	want := audit.Summarize(summaryEntries())
	var b bytes.Buffer
	if err := want.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got audit.Summary
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestSummarizerIncremental checks that Summary can be taken while
// counting goes on, and that the Summarizer's own counts are not shared.
func TestSummarizerIncremental(t *testing.T) {
	entries := summaryEntries()
	var s audit.Summarizer
	s.Add(&entries[0])
	first := s.Summary()
	for i := 1; i < len(entries); i++ {
		s.Add(&entries[i])
	}
	if got, want := first.Requests, 1; got != want {
		t.Errorf("first requests: got %v, want %v", got, want)
	}
	if got, want := first.Agents, []audit.Count{{Name: "billing", Requests: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("first agents: got %v, want %v", got, want)
	}
	if got, want := s.Summary(), audit.Summarize(entries); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
