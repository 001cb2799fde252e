package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// budgetMetrics are the collectors of budget checks.
type budgetMetrics struct {
	decisions *prometheus.CounterVec
	checks    *prometheus.HistogramVec
}

func newBudgetMetrics(reg *prometheus.Registry) budgetMetrics {
	b := budgetMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_budget_decisions_total",
			Help: "Requests counted against a budget, by agent, budget (such as STRIPE_LIVE:100/1h) and result (allowed, refused, unavailable: the budgets could not be checked).",
		}, []string{"agent", "budget", "result"}),
		checks: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyhole_budget_check_seconds",
			Help:    "Time a budget check took on the request path, by backend (memory, redis); requests without a budget are not checked.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, []string{"backend"}),
	}
	reg.MustRegister(b.decisions, b.checks)
	return b
}

// BudgetDecision counts one request against one budget; it implements
// budget.Observer.
func (m *Metrics) BudgetDecision(agent, budget, result string) {
	m.budgets.decisions.WithLabelValues(agent, budget, result).Inc()
}

// BudgetCheckDuration records how long one budget check took; it
// implements budget.Observer.
func (m *Metrics) BudgetCheckDuration(backend string, d time.Duration) {
	m.budgets.checks.WithLabelValues(backend).Observe(d.Seconds())
}
