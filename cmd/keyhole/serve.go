package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/gctune"
	"keyhole/metrics"
	"keyhole/proxy"
	"keyhole/rules"
	"keyhole/tokens"
)

// serve runs the proxy until SIGINT or SIGTERM, reloading the rules on
// SIGHUP and whenever the rules file or a file: source changes.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	s, rest, err := parseSettings("serve", args, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve: unexpected argument %q", rest[0])
	}
	if err := installKeys(s); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: s.LogLevel}))
	// net/http prints through the standard logger with texts that quote
	// bytes from upstreams: route it to fixed sentences.
	stdlog.SetFlags(0)
	stdlog.SetOutput(proxy.StdLogWriter(log))
	m := metrics.New()
	shared, err := openShared(ctx, s, log, m)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	loader, fileStore := sourceLoader(s, true, m)
	secretStore, err := shareStore(ctx, shared, fileStore, loader, log, m)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	storeChanged := storeChanges(ctx, secretStore) // from before the first read
	set, err := loader.Load(ctx, s.Rules, nil)
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
	if err := shareRevocations(ctx, shared, revoked, log, m); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	auditLog, auditFile, err := audit.OpenChained(s.AuditLog, os.Stdout, s.StateDir)
	if err != nil {
		return err
	}
	defer auditFile.Close()

	budgets, err := budgetLimiter(shared, s.BudgetTimeout, m)
	if err != nil {
		return err
	}
	var p *proxy.Proxy
	hand, err := newHandoff(handoffDeps{settings: s, store: secretStore, state: sharedHandoff(shared, fileStore), audit: auditLog, log: log,
		rules:         func() *rules.Set { return p.Rules() },
		refreshStored: func(ctx context.Context) error { return p.RefreshStored(ctx) }})
	if err != nil {
		return err
	}
	var api proxy.AgentAPI
	if hand != nil { // no store, no hand-offs: keyhole.internal answers not_found
		api = hand
	}
	p, err = proxy.New(s.Proxy, proxy.Deps{
		API:       api,
		Rules:     set,
		Authority: authority,
		Audit:     auditLog,
		Log:       log,
		Tokens:    &proxy.Tokens{Key: key, Revoked: revoked},
		Observer:  m,
		Budgets:   budgets,
		Store:     proxyStore(secretStore),

		SharedCredentials: sharedCredentials(shared, fileStore),
	})
	if err != nil {
		return err
	}
	refreshStored(ctx, p, secretStore, log)
	registerGauges(m, p, authority, auditLog, auditFile)
	ln, err := p.Listen()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	front, frontDone, err := startDatabases(ctx, s, set, authority, key, revoked, auditLog, log)
	if err != nil {
		return err
	}

	if err := startHandoff(ctx, hand, set, authority, m, log); err != nil {
		return err
	}
	stopTrace, err := startTrace(s.Trace)
	if err != nil {
		return err
	}
	defer stopTrace()
	go revoked.Watch(ctx, 0, func(err error) { log.Error("revocation list", "error", err) })
	if _, set := os.LookupEnv("GOGC"); !set {
		// The collector's target follows load: low while the proxy is
		// quiet or lightly used, which keeps an idle tunnel ~20% smaller,
		// high under load, where collecting half as often saves CPU
		// (BENCHMARKS.md).
		go (&gctune.Tuner{Requests: p.Requests}).Run(ctx)
	}
	watcher := &rules.Watcher{
		Path:      s.Rules,
		OnLoad:    func(set *rules.Set) { reloaded(p, set, log, auditLog, m); front.SetRules(set) },
		OnError:   func(err error) { reloadFailed(err, log, auditLog, m) },
		Loader:    loader,
		OnRefresh: func(set *rules.Set) { refreshed(p, set, log, m); front.SetRules(set) },
		Changes:   storeChanged,
	}
	go watcher.Run(ctx, set, hangups(ctx, func() {
		if err := auditFile.Reopen(); err != nil {
			log.Error("audit log not reopened", "error", err)
		}
	}))
	if s.AdminListen != "" {
		if err := serveAdmin(ctx, s.AdminListen, s.Proxy.Listen, m, p, log, shared.Ready); err != nil {
			return err
		}
	}
	log.Info("keyhole is listening", "addr", ln.Addr().String(), "rules", s.Rules, "state_dir", s.StateDir)
	err = p.Serve(ctx, ln)
	<-frontDone
	log.Info("keyhole stopped")
	return err
}

// hangups turns SIGHUP into reload requests, calling also first: SIGHUP
// reopens the audit log (after logrotate moved it) and reloads the rules.
func hangups(ctx context.Context, also func()) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				also()
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// reloaded puts a newly loaded rules set in force and records it.
func reloaded(p *proxy.Proxy, set *rules.Set, log *slog.Logger, a *audit.Logger, m *metrics.Metrics) {
	p.SetRules(set)
	for _, w := range set.Warnings {
		log.Warn(w)
	}
	log.Info("rules reloaded", "summary", set.Summary())
	m.Reloaded(true)
	_ = a.Event(time.Now(), "reload", slog.Bool("ok", true), slog.String("file", set.File), slog.String("summary", set.Summary()))
}

// reloadFailed reports a rules file that did not load; the old rules stay.
func reloadFailed(err error, log *slog.Logger, a *audit.Logger, m *metrics.Metrics) {
	lines := errorLines(err)
	for _, l := range lines {
		log.Error("rules reload failed; the previous rules stay in force: " + l)
	}
	m.Reloaded(false)
	_ = a.Event(time.Now(), "reload", slog.Bool("ok", false), slog.Any("errors", lines))
}

// registerGauges exposes the proxy's and the authority's live counts.
func registerGauges(m *metrics.Metrics, p *proxy.Proxy, a *certs.Authority, al *audit.Logger, af *audit.File) {
	m.Gauge("keyhole_open_tunnels", "CONNECT tunnels (and upgraded connections) open now.", func() float64 {
		_, tunnels, _ := p.Stats()
		return float64(tunnels)
	})
	m.Gauge("keyhole_open_connections", "Client connections open now.", func() float64 {
		conns, _, _ := p.Stats()
		return float64(conns)
	})
	m.Gauge("keyhole_requests_in_flight", "Requests started and not yet finished.", func() float64 {
		_, _, n := p.Stats()
		return float64(n)
	})
	m.Counter("keyhole_leaf_cache_hits_total", "Leaf certificates served from the cache.", func() float64 {
		hits, _ := a.CacheStats()
		return float64(hits)
	})
	m.Counter("keyhole_leaf_cache_misses_total", "Leaf certificates minted.", func() float64 {
		_, misses := a.CacheStats()
		return float64(misses)
	})
	m.Counter("keyhole_audit_write_failures_total", "Audit records that could not be written.", func() float64 {
		return float64(al.Failures() + af.Failures())
	})
}

// serveAdmin starts the admin listener (/healthz, /readyz, /metrics). It
// refuses the proxy's own address: the admin endpoints must not be reachable
// as a proxy destination by agents.
func serveAdmin(ctx context.Context, addr, proxyAddr string, m *metrics.Metrics, p *proxy.Proxy, log *slog.Logger, state func() error) error {
	if addr == proxyAddr && !strings.HasSuffix(addr, ":0") {
		return fmt.Errorf("serve: KEYHOLE_ADMIN_LISTEN %s must differ from the proxy's address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: admin listen: %w", err)
	}
	ready := func() error {
		if p.Draining() {
			return errors.New("shutting down")
		}
		if p.Rules() == nil {
			return errors.New("no rules loaded")
		}
		return state()
	}
	srv := &http.Server{Handler: m.Admin(ready), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "error", err)
		}
	}()
	log.Info("admin endpoints", "admin_addr", ln.Addr().String(), "paths", strings.Join([]string{"/healthz", "/readyz", "/metrics"}, " "))
	return nil
}
