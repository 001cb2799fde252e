package main

import (
	"context"
	"log/slog"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/certs"
	"keyhole/pgfront"
	"keyhole/rules"
	"keyhole/tokens"
)

// startDatabases opens the PostgreSQL front's listeners (none when the
// rules have no databases section) and runs it until ctx ends; the
// returned channel closes when it has shut down.
func startDatabases(ctx context.Context, s settings, set *rules.Set, a *certs.Authority, key tokens.Key, revoked *tokens.Revocations, al *audit.Logger, log *slog.Logger) (*pgfront.Server, <-chan struct{}, error) {
	front, err := pgfront.New(pgfront.Config{
		UpstreamCAFile:  s.Proxy.UpstreamCAFile,
		DialTimeout:     s.Proxy.DialTimeout,
		ShutdownTimeout: s.Proxy.ShutdownTimeout,
	}, pgfront.Deps{
		Rules:     set,
		Authority: a,
		Verifier:  &agentauth.Verifier{Key: key, Revoked: revoked},
		Audit:     al,
		Log:       log,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := front.Listen(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = front.Serve(ctx)
	}()
	return front, done, nil
}
