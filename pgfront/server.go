// Package pgfront is keyhole's PostgreSQL front: agents connect to it with
// any PostgreSQL client, user = their agent name, password = their token,
// database = a handle of the rules' databases section. keyhole checks the
// token exactly as the proxy checks Proxy-Authorization (package agentauth),
// checks that the agent may use the handle, logs in to the real server with
// the real credentials (SCRAM-SHA-256, verified TLS, the same pins and
// block_private as HTTP upstreams), and relays the session both ways: simple
// and extended protocol, COPY, LISTEN/NOTIFY and cancel requests. It writes
// one audit record per statement and per refused login.
//
// What the agent sees of the upstream: the server's ParameterStatus
// messages (version, encoding, time zone, ...) except session_authorization,
// which names the agent (or, with temporary roles, the task's role); keyhole's
// own BackendKeyData (cancel requests are mapped to the server's); and the
// server's errors and notices, with the real user name replaced by the
// agent's. Never the real password, which crosses no wire at all (SCRAM).
//
// The client leg uses github.com/jackc/pgx/v5/pgproto3 for messages after
// the startup packet, which keyhole reads itself (startup.go); the upstream
// leg is a pgconn connection, hijacked after login.
package pgfront

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/certs"
	"keyhole/pgroles"
	"keyhole/rules"
	"keyhole/upstream"
)

// Config holds the front's settings. The zero value of every field works and
// its doc states the default.
type Config struct {
	// UpstreamCAFile names a PEM file of extra roots trusted for upstream
	// servers, besides the system's. Default none.
	UpstreamCAFile string
	// LoginTimeout bounds a client's startup, TLS handshake and password,
	// and keyhole's login upstream. Default 15s.
	LoginTimeout time.Duration
	// DialTimeout bounds connecting to an upstream. Default 10s.
	DialTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits, once its context ends,
	// for sessions with a statement in flight. Default 10s.
	ShutdownTimeout time.Duration
	// MaxSessions bounds the client sessions open at once. Default 1024.
	MaxSessions int
	// MaxMessageBytes bounds one message from a client. Default 64 MiB.
	MaxMessageBytes int
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LoginTimeout, 15*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.ShutdownTimeout, 10*time.Second)
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1024
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 64 << 20
	}
	return c
}

// Deps are the front's collaborators.
type Deps struct {
	// Rules is the initial rules set; required.
	Rules *rules.Set
	// Authority mints the TLS leaf agents see; required.
	Authority *certs.Authority
	// Verifier checks agent tokens; nil accepts static tokens only.
	Verifier *agentauth.Verifier
	// Audit receives the statement records; nil discards them.
	Audit *audit.Logger
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
}

// Server is the PostgreSQL front. Create it with New, open its listeners
// with Listen, and run it with Serve.
type Server struct {
	cfg       Config
	authority *certs.Authority
	verifier  *agentauth.Verifier
	audit     *audit.Logger
	log       *slog.Logger
	roots     *x509.CertPool
	ids       *audit.IDs
	roles     *pgroles.Manager

	rules atomic.Pointer[rules.Set]
	slots chan struct{}

	mu        sync.Mutex
	listeners map[string]net.Listener // by configured address
	sessions  map[*session]struct{}
	cancels   map[uint32]*cancelKey
	draining  bool
	wg        sync.WaitGroup
}

// New returns a front for cfg.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Rules == nil || deps.Authority == nil {
		return nil, errors.New("pgfront: rules and authority are required")
	}
	cfg = cfg.withDefaults()
	roots, err := upstream.Roots(cfg.UpstreamCAFile)
	if err != nil {
		return nil, fmt.Errorf("pgfront: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, authority: deps.Authority, verifier: deps.Verifier, audit: deps.Audit, log: log,
		roots: roots, ids: audit.NewIDs(), slots: make(chan struct{}, cfg.MaxSessions),
		listeners: map[string]net.Listener{}, sessions: map[*session]struct{}{}, cancels: map[uint32]*cancelKey{},
	}
	s.roles = pgroles.New(s.adminConnect, s.roleExpired, log)
	s.rules.Store(deps.Rules)
	return s, nil
}

// Listen opens a listener for every listen address of the initial rules.
// It fails when one cannot be opened.
func (s *Server) Listen() error {
	return s.apply(s.rules.Load(), true)
}

// SetRules puts set in force: new sessions and the next statement of every
// open session are checked under it, listeners for new addresses open and
// those for addresses no handle names any more close (their sessions stay).
func (s *Server) SetRules(set *rules.Set) {
	s.rules.Store(set)
	_ = s.apply(set, false)
}

// apply opens and closes listeners to match set; strict makes the first
// failure an error rather than a log line.
func (s *Server) apply(set *rules.Set, strict bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil
	}
	want := set.ListenAddrs()
	for addr, ln := range s.listeners {
		if !slices.Contains(want, addr) {
			ln.Close()
			delete(s.listeners, addr)
		}
	}
	for _, addr := range want {
		if s.listeners[addr] != nil {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if strict {
				return fmt.Errorf("pgfront: listen: %w", err)
			}
			s.log.Error("postgres front: listen failed", "listen", addr, "error", err)
			continue
		}
		s.listeners[addr] = ln
		var names []string
		for _, d := range set.DatabasesAt(addr) {
			names = append(names, d.Name)
		}
		s.log.Info("postgres front listening", "listen", addr, "addr", ln.Addr().String(), "databases", names)
		s.wg.Add(1)
		go s.accept(ln, addr)
	}
	return nil
}

func (s *Server) accept(ln net.Listener, addr string) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return // closed
		}
		select {
		case s.slots <- struct{}{}:
		default:
			go s.tooMany(c)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.handle(c, addr)
		}()
	}
}

// Serve runs until ctx ends, then stops accepting, lets the statements in
// flight finish for at most ShutdownTimeout, closes every session and drops
// the temporary roles.
func (s *Server) Serve(ctx context.Context) error {
	s.sweep(ctx, s.rules.Load())
	<-ctx.Done()
	s.mu.Lock()
	s.draining = true
	for addr, ln := range s.listeners {
		ln.Close()
		delete(s.listeners, addr)
	}
	s.mu.Unlock()
	deadline := time.Now().Add(s.cfg.ShutdownTimeout)
	for {
		open := 0
		for _, ss := range s.openSessions() {
			if !ss.tr.busy() || time.Now().After(deadline) {
				ss.end(refuse(codeAdminShutdown, "shutting_down", "keyhole is shutting down; reconnect later"))
				continue
			}
			open++
		}
		if open == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.wg.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.roles.Close(dctx); err != nil {
		s.log.Error("temporary roles not dropped at shutdown; they are swept at the next start", "error", err)
	}
	return nil
}

// sweep drops leftover temporary roles of every handle that has them.
func (s *Server) sweep(ctx context.Context, set *rules.Set) {
	for _, name := range set.DatabaseNames() {
		d := set.Databases[name]
		if d.TemporaryRoles == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, s.cfg.LoginTimeout)
		if err := s.roles.Sweep(sctx, d); err != nil {
			s.log.Warn("temporary roles not swept; they are swept when the handle is first used", "database", d.Name, "error", err)
		}
		cancel()
	}
}

func (s *Server) openSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		out = append(out, ss)
	}
	return out
}

// register adds ss to the open sessions; false when shutting down.
func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.sessions[ss] = struct{}{}
	return true
}

func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	if ss.cancel != nil {
		delete(s.cancels, ss.cancel.pid)
	}
	s.mu.Unlock()
}

// roleExpired ends keyhole's sessions of an expired temporary role, before
// the role is dropped.
func (s *Server) roleExpired(r *pgroles.Role) {
	for _, ss := range s.openSessions() {
		if ss.role == r.Name {
			ss.end(refuse(codeInvalidPassword, "token_expired", "the temporary role of this task (%s) expired; reconnect to get a new one", r.Name))
		}
	}
	_ = s.audit.Event(time.Now(), "temporary_role_dropped", slog.String("protocol", audit.ProtocolPostgres),
		slog.String("database", r.Database), slog.String("role", r.Name))
}

// Sessions returns the number of client sessions open now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// tooMany refuses a connection over MaxSessions, as PostgreSQL does once
// the client has sent its startup packet.
func (s *Server) tooMany(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := readStartup(c); err != nil {
		return
	}
	writeMsg(c, refuse(codeTooManyConns, "too_many_sessions", "keyhole has %d database sessions open, its limit; try again later", s.cfg.MaxSessions).response(true, ""))
}
