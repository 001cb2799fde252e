package metrics

import "github.com/prometheus/client_golang/prometheus"

// sourceMetrics count the reads of secret sources. Labels are source kinds
// (env, file, exec, vault, store): a fixed, small set.
type sourceMetrics struct {
	reads     *prometheus.CounterVec
	errors    *prometheus.CounterVec
	refreshes prometheus.Counter
}

func newSourceMetrics(reg *prometheus.Registry) sourceMetrics {
	s := sourceMetrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_source_reads_total",
			Help: "Reads of secret sources (at load, reload and refresh), by source kind.",
		}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_source_errors_total",
			Help: "Reads of secret sources that failed, by source kind; the operational log names each source.",
		}, []string{"kind"}),
		refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhole_source_refreshes_total",
			Help: "Rules sets rebuilt with values read again before they expired, after a failure, or after the store changed.",
		}),
	}
	reg.MustRegister(s.reads, s.errors, s.refreshes)
	return s
}

// SourceRead counts one read of a source of kind, failed when err is not
// nil. It suits rules.Loader's Observe.
func (m *Metrics) SourceRead(kind string, err error) {
	m.sources.reads.WithLabelValues(kind).Inc()
	if err != nil {
		m.sources.errors.WithLabelValues(kind).Inc()
	}
}

// Refreshed counts a rules set rebuilt with refreshed values.
func (m *Metrics) Refreshed() { m.sources.refreshes.Inc() }
