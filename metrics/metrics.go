// Package metrics exposes keyhole's Prometheus metrics and its admin
// endpoints (/healthz, /readyz, /metrics).
//
// Request metrics are derived from audit records, the one canonical event of
// a request, so the metrics and the audit log always agree. Label values are
// decisions, reasons, agent and secret names from the rules: a bounded set
// that never holds a value, a host or a path.
package metrics

import (
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"keyhole/audit"
)

// Metrics holds keyhole's collectors in their own registry.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	injections *prometheus.CounterVec
	counters   counterCache // children of requests and injections
	// allowed is the child of requests for allowed requests, the usual
	// ones, made on the first (so that /metrics shows it from then on, as
	// it shows every other pair of labels).
	allowed     prometheus.Counter
	allowedOnce sync.Once
	scrubbed    prometheus.Counter
	duration    prometheus.Histogram
	reloads     *prometheus.CounterVec
	sources     sourceMetrics
	budgets     budgetMetrics
	captures    captureMetrics
}

// New returns a registry with keyhole's collectors and the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_requests_total",
			Help: "Requests from agents by decision (allow, deny) and refusal reason (empty when allowed); refused CONNECTs included.",
		}, []string{"decision", "reason"}),
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_injections_total",
			Help: "Secrets injected into allowed requests, by secret and agent.",
		}, []string{"secret", "agent"}),
		scrubbed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhole_scrubbed_values_total",
			Help: "Secret values replaced by their placeholders in responses.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyhole_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response body.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_reloads_total",
			Help: "Rules reloads by result (ok, error).",
		}, []string{"result"}),
	}
	m.reg.MustRegister(m.requests, m.injections, m.scrubbed, m.duration, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sources = newSourceMetrics(m.reg)
	m.budgets = newBudgetMetrics(m.reg)
	m.captures = newCaptureMetrics(m.reg)
	return m
}

// Observe counts one audit record.
func (m *Metrics) Observe(rec *audit.Record) {
	if rec.Decision == audit.Allow && rec.Reason == "" {
		m.allowedOnce.Do(func() { m.allowed = m.requests.WithLabelValues(audit.Allow, "") })
		m.allowed.Inc()
	} else {
		m.counters.get(m.requests, rec.Decision, rec.Reason).Inc()
	}
	if rec.Decision == audit.Allow {
		for _, s := range rec.Secrets {
			m.counters.get(m.injections, s, rec.Agent).Inc()
		}
	}
	if rec.Scrubbed > 0 {
		m.scrubbed.Add(float64(rec.Scrubbed))
	}
	m.duration.Observe(rec.Duration.Seconds())
	m.captures.observe(rec)
}

// counterCache remembers the children of counter vectors with two labels,
// so that counting a request costs a map lookup instead of hashing its
// labels into the vector each time. Label values come from a bounded set
// (decisions, reasons, secret and agent names), so the map stops growing
// soon: it is read without a lock, and a new child copies it (under mu)
// into the next map.
type counterCache struct {
	m  atomic.Pointer[map[counterKey]prometheus.Counter] // never modified once stored
	mu sync.Mutex                                        // serializes copies
}

type counterKey struct {
	vec  *prometheus.CounterVec
	a, b string
}

func (c *counterCache) get(vec *prometheus.CounterVec, a, b string) prometheus.Counter {
	k := counterKey{vec, a, b}
	if m := c.m.Load(); m != nil {
		if ctr, ok := (*m)[k]; ok {
			return ctr
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if ctr, ok := (*old)[k]; ok {
			return ctr // another request added it first
		}
	}
	ctr := vec.WithLabelValues(a, b)
	next := make(map[counterKey]prometheus.Counter, 1)
	if old != nil {
		next = maps.Clone(*old)
	}
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}

// Reloaded counts a rules reload.
func (m *Metrics) Reloaded(ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// Gauge registers a gauge read from f at every scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Counter registers a counter read from f at every scrape.
func (m *Metrics) Counter(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// Admin returns the admin listener's handler: /healthz answers 200 while the
// process serves, /readyz answers 200 when ready returns nil and 503 with
// its error otherwise, and /metrics serves the registry.
func (m *Metrics) Admin(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Timeout: 10 * time.Second}))
	return mux
}
