package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyhole/budget"
)

var _ budget.Observer = (*Metrics)(nil)

func TestBudgetMetrics(t *testing.T) {
	m := New()
	m.BudgetDecision("billing", "STRIPE_LIVE:100/1h", budget.ResultAllowed)
	m.BudgetDecision("billing", "STRIPE_LIVE:100/1h", budget.ResultAllowed)
	m.BudgetDecision("billing", "STRIPE_LIVE:100/1h", budget.ResultRefused)
	m.BudgetDecision("billing", "*:5000/1d", budget.ResultUnavailable)
	m.BudgetCheckDuration("redis", 300*time.Microsecond)
	srv := httptest.NewServer(m.Admin(func() error { return nil }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`keyhole_budget_decisions_total{agent="billing",budget="STRIPE_LIVE:100/1h",result="allowed"} 2`,
		`keyhole_budget_decisions_total{agent="billing",budget="STRIPE_LIVE:100/1h",result="refused"} 1`,
		`keyhole_budget_decisions_total{agent="billing",budget="*:5000/1d",result="unavailable"} 1`,
		`keyhole_budget_check_seconds_count{backend="redis"} 1`,
		`keyhole_budget_check_seconds_bucket{backend="redis",le="0.0005"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
