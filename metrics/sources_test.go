package metrics

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSourceMetrics(t *testing.T) {
	m := New()
	m.SourceRead("exec", nil)
	m.SourceRead("exec", errors.New("exited with status 1"))
	m.SourceRead("vault", errors.New("sealed"))
	m.Refreshed()
	srv := httptest.NewServer(m.Admin(func() error { return nil }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`keyhole_source_reads_total{kind="exec"} 2`,
		`keyhole_source_errors_total{kind="exec"} 1`,
		`keyhole_source_errors_total{kind="vault"} 1`,
		`keyhole_source_refreshes_total 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
