package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
)

func TestObserveAndScrape(t *testing.T) {
	m := New()
	recs := []*audit.Record{
		{Decision: audit.Allow, Agent: "billing", Secrets: []string{"STRIPE"}, Scrubbed: 2, Duration: 3 * time.Millisecond},
		{Decision: audit.Allow, Agent: "billing", Secrets: []string{"STRIPE", "GITHUB"}, Duration: time.Millisecond},
		{Decision: audit.Deny, Reason: "host_not_allowed", Agent: "billing", Secrets: []string{"STRIPE"}},
	}
	for _, r := range recs {
		m.Observe(r)
	}
	m.Reloaded(true)
	m.Reloaded(false)
	m.Gauge("keyhole_test_gauge", "a test gauge", func() float64 { return 7 })
	ready := errors.New("not yet")
	srv := httptest.NewServer(m.Admin(func() error { return ready }))
	defer srv.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, text := get("/metrics")
	if status != 200 {
		t.Fatalf("/metrics: got %d", status)
	}
	for _, want := range []string{
		`keyhole_requests_total{decision="allow",reason=""} 2`,
		`keyhole_requests_total{decision="deny",reason="host_not_allowed"} 1`,
		`keyhole_injections_total{agent="billing",secret="STRIPE"} 2`,
		`keyhole_injections_total{agent="billing",secret="GITHUB"} 1`,
		`keyhole_scrubbed_values_total 2`,
		`keyhole_request_duration_seconds_count 3`,
		`keyhole_reloads_total{result="ok"} 1`,
		`keyhole_reloads_total{result="error"} 1`,
		`keyhole_test_gauge 7`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if status, _ := get("/healthz"); status != 200 {
		t.Errorf("/healthz: got %d", status)
	}
	if status, body := get("/readyz"); status != 503 || !strings.Contains(body, "not yet") {
		t.Errorf("/readyz while not ready: got %d %q", status, body)
	}
	ready = nil
	if status, _ := get("/readyz"); status != 200 {
		t.Errorf("/readyz when ready: got %d", status)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New()
	rec := &audit.Record{Decision: audit.Allow, Agent: "billing", Secrets: []string{"STRIPE"}, Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(rec)
	}
}

func BenchmarkObserveParallel(b *testing.B) {
	m := New()
	rec := &audit.Record{Decision: audit.Allow, Agent: "billing", Secrets: []string{"STRIPE"}, Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(rec)
		}
	})
}
