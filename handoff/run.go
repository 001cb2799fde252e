package handoff

import (
	"context"
	"log/slog"
	"time"

	"keyhole/metrics"
)

// SweepInterval is how often Run sweeps when its interval is 0.
const SweepInterval = 30 * time.Second

// Run sweeps the state every interval (0 means SweepInterval) until ctx
// ends, auditing share_expired and intake_expired for what expired.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = SweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.SweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepOnce sweeps the state once.
func (s *Service) SweepOnce(ctx context.Context) {
	shares, intakes, err := s.cfg.State.Sweep(ctx, s.cfg.Now())
	if err != nil {
		s.cfg.Log.Error("handoff: sweeping the state failed", "err", err)
		return
	}
	for _, id := range shares {
		s.sharesExpired.Add(1)
		s.event("share_expired", slog.String("id", id))
	}
	for _, id := range intakes {
		s.intakesExpired.Add(1)
		s.event("intake_expired", slog.String("id", id))
	}
	s.auditOperatorShares(ctx)
}

// auditOperatorShares audits share_created for the shares `keyhole share`
// made since the last sweep: that command runs beside serve, which alone
// writes the audit log. The first sweep only learns which shares exist.
func (s *Service) auditOperatorShares(ctx context.Context) {
	shares, err := s.cfg.State.ListShares(ctx)
	if err != nil {
		s.cfg.Log.Error("handoff: listing shares failed", "err", err)
		return
	}
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	first := s.known == nil
	now := make(map[string]bool, len(shares))
	for _, sh := range shares {
		now[sh.ID] = true
		if first || s.known[sh.ID] || sh.Agent != "" {
			continue
		}
		s.event("share_created", slog.String("id", sh.ID), slog.String("agent", ""), slog.String("by", "operator"),
			slog.String("secret", sh.Secret), slog.String("to", sh.To), slog.Int("views", sh.Views),
			slog.Time("expires_at", sh.Expires))
	}
	s.known = now // only what the state still holds: bounded by it
}

// noteShare records a share this process made, which it audited itself.
func (s *Service) noteShare(id string) {
	s.knownMu.Lock()
	defer s.knownMu.Unlock()
	if s.known != nil {
		s.known[id] = true
	}
}

// RegisterMetrics adds the service's counters to m.
func (s *Service) RegisterMetrics(m *metrics.Metrics) {
	for _, c := range []struct {
		name, help string
		v          interface{ Load() int64 }
	}{
		{"keyhole_shares_created_total", "Share links created and delivered.", &s.sharesCreated},
		{"keyhole_shares_viewed_total", "Views taken of share links.", &s.sharesViewed},
		{"keyhole_shares_expired_total", "Share links that expired with views left.", &s.sharesExpired},
		{"keyhole_intakes_requested_total", "Intake requests created and delivered.", &s.intakesRequested},
		{"keyhole_intakes_fulfilled_total", "Intake requests a human answered.", &s.intakesFulfilled},
		{"keyhole_intakes_declined_total", "Intake requests a human declined.", &s.intakesDeclined},
		{"keyhole_intakes_expired_total", "Intake requests that expired unanswered.", &s.intakesExpired},
		{"keyhole_handoff_deliveries_failed_total", "Links whose delivery to a webhook failed after every try.", &s.deliveriesFailed},
	} {
		m.Counter(c.name, c.help, func() float64 { return float64(c.v.Load()) })
	}
}
