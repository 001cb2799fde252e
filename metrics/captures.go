package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"keyhole/audit"
)

// captureMetrics count responses that matched a capture rule.
type captureMetrics struct {
	captures *prometheus.CounterVec
}

func newCaptureMetrics(reg *prometheus.Registry) captureMetrics {
	c := captureMetrics{
		captures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhole_captures_total",
			Help: "Responses that matched a capture rule, by outcome: captured, or why not (not_json, missing_field, not_string, ambiguous, too_large, decode_error, store_error, no_store).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(c.captures)
	return c
}

// observe counts the capture outcome of rec, if it has one.
func (c captureMetrics) observe(rec *audit.Record) {
	switch {
	case len(rec.Captured) > 0:
		c.captures.WithLabelValues("captured").Add(float64(len(rec.Captured)))
	case rec.CaptureError != "":
		c.captures.WithLabelValues(rec.CaptureError).Inc()
	}
}
