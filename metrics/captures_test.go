package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keyhole/audit"
)

func TestCaptureMetrics(t *testing.T) {
	m := New()
	m.Observe(&audit.Record{Decision: audit.Allow, Captured: []string{"KEY_0a1b2c3d"}})
	m.Observe(&audit.Record{Decision: audit.Deny, Reason: "capture_failed", CaptureError: "not_json"})
	m.Observe(&audit.Record{Decision: audit.Allow})
	srv := httptest.NewServer(m.Admin(func() error { return nil }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`keyhole_captures_total{outcome="captured"} 1`,
		`keyhole_captures_total{outcome="not_json"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(b), "KEY_0a1b2c3d") {
		t.Error("a captured secret's name is a label")
	}
}
