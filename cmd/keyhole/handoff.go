package main

import (
	"context"
	"log/slog"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/handoff"
	"keyhole/handoff/pages"
	"keyhole/metrics"
	"keyhole/proxy"
	"keyhole/rules"
	"keyhole/store"
	"keyhole/upstream"
)

// The hand-off service answers keyhole.internal (serve sets it as
// proxy.Deps.API).
var _ proxy.AgentAPI = (*handoff.Service)(nil)

// handoffDeps are what newHandoff needs from serve or `keyhole share`.
type handoffDeps struct {
	settings      settings
	store         store.Store   // nil: the store could not be opened
	state         handoff.State // nil: the file State in the state dir
	audit         *audit.Logger
	log           *slog.Logger
	rules         func() *rules.Set
	refreshStored func(context.Context) error
}

// newHandoff builds the hand-off service over the file State in the state
// dir, delivering through a client that trusts the system's roots and
// KEYHOLE_UPSTREAM_CA_FILE. Without a store (it could not be opened; the
// sources' warnings say why) there is no service: hand-offs need it.
func newHandoff(d handoffDeps) (*handoff.Service, error) {
	if d.store == nil {
		return nil, nil
	}
	state := d.state
	if state == nil {
		fs, err := handoff.OpenFileState(d.settings.StateDir)
		if err != nil {
			return nil, err
		}
		state = fs
	}
	roots, err := upstream.Roots(d.settings.Proxy.UpstreamCAFile)
	if err != nil {
		return nil, err
	}
	return handoff.New(handoff.Config{
		State:         state,
		Store:         d.store,
		Rules:         d.rules,
		RefreshStored: d.refreshStored,
		Audit:         d.audit,
		Log:           d.log,
		Client:        handoff.NewWebhookClient(roots, d.rules),
	})
}

// startHandoff runs the sweeper and, when the rules have a handoff section,
// the handoff listener serving the pages humans open, until ctx ends. The
// listener's address is fixed at start: a reload that changes
// handoff.listen or the certificate needs a restart (the recipients,
// policies and max_ttl of a reload apply at once).
func startHandoff(ctx context.Context, svc *handoff.Service, set *rules.Set, ca *certs.Authority, m *metrics.Metrics, log *slog.Logger) error {
	if svc == nil {
		if set.Handoff != nil {
			log.Warn("hand-offs are off: the store could not be opened")
		}
		return nil
	}
	svc.RegisterMetrics(m)
	go svc.Run(ctx, 0)
	h := set.Handoff
	if h == nil {
		return nil
	}
	ln, err := pages.Listen(pages.ListenConfig{Addr: h.Listen, BaseURL: h.BaseURL, CertFile: h.CertFile, KeyFile: h.KeyFile, CA: ca})
	if err != nil {
		return err
	}
	go func() {
		if err := pages.Serve(ctx, ln, pages.New(svc, pages.Options{Logger: log}), log); err != nil {
			log.Error("handoff listener stopped", "error", err)
		}
	}()
	log.Info("handoff listener", "handoff_addr", ln.Addr().String(), "base_url", h.BaseURL)
	return nil
}
