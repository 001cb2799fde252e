package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/proxy"
	"keyhole/rules"
	"keyhole/tokens"
)

// serve runs the proxy until SIGINT or SIGTERM.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	s, rest, err := parseSettings("serve", args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected argument %q", rest[0])
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: s.LogLevel}))

	set, err := rules.Load(s.Rules)
	if err != nil {
		printErrors(stderr, err)
		return exitError{}
	}
	for _, w := range set.Warnings {
		log.Warn(w)
	}
	authority, err := certs.LoadOrCreate(s.StateDir, certs.Options{})
	if err != nil {
		return err
	}
	key, err := tokens.LoadOrCreateKey(s.StateDir)
	if err != nil {
		return err
	}
	revoked, err := tokens.OpenRevocations(s.StateDir)
	if err != nil {
		return err
	}
	auditLog, closeAudit, err := audit.Open(s.AuditLog, os.Stdout)
	if err != nil {
		return err
	}
	defer closeAudit.Close()

	p, err := proxy.New(s.Proxy, proxy.Deps{
		Rules:     set,
		Authority: authority,
		Audit:     auditLog,
		Log:       log,
		Tokens:    &proxy.Tokens{Key: key, Revoked: revoked},
	})
	if err != nil {
		return err
	}
	ln, err := p.Listen()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go revoked.Watch(ctx, 0, func(err error) { log.Error("revocation list", "error", err) })
	log.Info("keyhole is listening", "addr", ln.Addr().String(), "rules", s.Rules, "state_dir", s.StateDir)
	err = p.Serve(ctx, ln)
	log.Info("keyhole stopped")
	return err
}
