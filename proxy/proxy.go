// Package proxy is keyhole's HTTP(S) proxy: it accepts CONNECT tunnels and
// plain-HTTP proxy requests from agents, intercepts the tunnels with a leaf
// certificate from keyhole's CA, runs every inner request through the
// policy and placeholder injection of package inject, sends allowed requests
// upstream over verified TLS, scrubs secrets out of responses with package
// scrub, and writes one audit record per request.
//
// Inside a tunnel keyhole does the TLS handshake itself, offering h2 and
// HTTP/1.x by ALPN: an h2 connection is served by golang.org/x/net/http2,
// each stream one exchange (see tunnel.go and h2.go).
//
// goproxy (github.com/elazarl/goproxy) is wired here and nowhere else. The
// proxy uses it for the CONNECT and a tunnel's HTTP/1 request loop only, and
// replaces every piece of it that would weaken the policy: its built-in CA
// and certificate signer (certs.Authority mints leaves), its transport (which
// skips TLS verification and honours HTTPS_PROXY), its routing by the inner
// Host header (a mismatch with the CONNECT target is refused), its silent
// close on upstream errors (a JSON refusal is sent instead) and its plain-HTTP
// handler (which holds back streamed responses).
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"

	"keyhole/audit"
	"keyhole/budget"
	"keyhole/certs"
	"keyhole/credential"
	"keyhole/rules"
	"keyhole/store"
	"keyhole/upstream"
)

// Config holds the proxy's settings. The zero value of every field works and
// its doc states the default. Fields carry the environment variable that sets
// them in keyhole serve.
type Config struct {
	// Listen is the proxy's address. Default "127.0.0.1:8080".
	Listen string `env:"KEYHOLE_LISTEN" envDefault:"127.0.0.1:8080"`
	// UpstreamCAFile names a PEM file of extra roots trusted for upstream
	// servers, besides the system's. Default none.
	UpstreamCAFile string `env:"KEYHOLE_UPSTREAM_CA_FILE"`
	// MaxConns bounds the client connections open at once; more wait to be
	// accepted. Zero means no bound; keyhole serve sets 4096.
	MaxConns int `env:"KEYHOLE_MAX_CONNS" envDefault:"4096"`
	// MaxHeaderBytes bounds a request's header. Default 1 MiB.
	MaxHeaderBytes int `env:"KEYHOLE_MAX_HEADER_BYTES" envDefault:"1048576"`
	// HeaderTimeout bounds the time to read a request's header from the
	// client, inside tunnels too (from the end of the TLS handshake for
	// the first request, from its first byte for the next). Default 10s.
	HeaderTimeout time.Duration `env:"KEYHOLE_HEADER_TIMEOUT" envDefault:"10s"`
	// HandshakeTimeout bounds the client's TLS handshake inside a tunnel
	// (from the CONNECT), and the upstream TLS handshake. Default 10s.
	HandshakeTimeout time.Duration `env:"KEYHOLE_HANDSHAKE_TIMEOUT" envDefault:"10s"`
	// IdleTimeout closes a client connection or tunnel on which nothing was
	// read or written for this long, and cuts an upstream response body
	// that sends nothing for this long. Default 2m.
	IdleTimeout time.Duration `env:"KEYHOLE_IDLE_TIMEOUT" envDefault:"2m"`
	// DialTimeout bounds connecting to an upstream. Default 10s.
	DialTimeout time.Duration `env:"KEYHOLE_DIAL_TIMEOUT" envDefault:"10s"`
	// UpstreamHeaderTimeout bounds the wait for an upstream's response
	// header after the request was sent. Default 5m (model APIs can think
	// for minutes before they answer).
	UpstreamHeaderTimeout time.Duration `env:"KEYHOLE_UPSTREAM_HEADER_TIMEOUT" envDefault:"5m"`
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its context ends. Default 10s.
	ShutdownTimeout time.Duration `env:"KEYHOLE_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	// ScrubRetired is how long a value that left the rules (a secret
	// removed on reload, a source that now gives another value) is still
	// scrubbed from responses, since an upstream may have stored it.
	// Default 24h.
	ScrubRetired time.Duration `env:"KEYHOLE_SCRUB_RETIRED" envDefault:"24h"`
	// MintTimeout bounds one call to a token endpoint (OAuth 2.0, GitHub,
	// STS). Default 10s.
	MintTimeout time.Duration `env:"KEYHOLE_MINT_TIMEOUT" envDefault:"10s"`
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 1 << 20
	}
	def(&c.HeaderTimeout, 10*time.Second)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.UpstreamHeaderTimeout, 5*time.Minute)
	def(&c.ShutdownTimeout, 10*time.Second)
	def(&c.ScrubRetired, 24*time.Hour)
	def(&c.MintTimeout, 10*time.Second)
	return c
}

// Deps are the proxy's collaborators.
type Deps struct {
	// Rules is the initial rules set; required.
	Rules *rules.Set
	// Authority mints the leaf certificates of intercepted tunnels; required.
	Authority *certs.Authority
	// Audit receives one record per request; nil discards them.
	Audit *audit.Logger
	// Log receives operational messages; nil discards them.
	Log *slog.Logger
	// Tokens verifies minted agent tokens; nil accepts static tokens only.
	Tokens *Tokens
	// Observer sees every audit record as it is written, for metrics; nil
	// means none.
	Observer Observer
	// Credentials mints and signs the credentials of every kind but
	// static; nil means the default, which reaches token endpoints through
	// the proxy's own transport (verified TLS, pins, block_private).
	Credentials Credentials
	// SharedCredentials, when not nil, makes the default Credentials share
	// minted tokens and STS sessions with other replicas (redisstate).
	SharedCredentials credential.Shared
	// Budgets checks the rules' budgets; nil means an in-process limiter
	// (budgets hold for this process only).
	Budgets *budget.Limiter
	// API answers the requests agents send to https://keyhole.internal;
	// nil answers every one with 404 not_found.
	API AgentAPI
	// Store holds the captured and taken-in values that become secrets of
	// their owner agent (see RefreshStored), and receives captured ones;
	// nil means none, and a response that matches a capture rule is
	// refused with capture_failed.
	Store store.Store
}

// Observer is told about every audit record the proxy writes.
type Observer interface {
	Observe(rec *audit.Record)
}

// Proxy is keyhole's proxy server. Create it with New and run it with Serve;
// it is also an http.Handler.
type Proxy struct {
	cfg       Config
	authority *certs.Authority
	audit     *audit.Logger
	log       *slog.Logger
	tokens    *Tokens
	observer  Observer
	creds     Credentials
	budgets   *budget.Limiter
	ids       *audit.IDs

	policy     atomic.Pointer[policy]
	api        AgentAPI
	store      store.Store
	stored     []*rules.Secret // the store's secrets with a policy; guarded by retirement.mu
	refreshing sync.Mutex      // serializes RefreshStored
	retirement retirement
	dialer     *dialer
	transport  *http.Transport // shared by requests without a secret
	upstreams  *upstreams
	mitm       *goproxy.ProxyHttpServer
	h2         *h2Server
	tunnelTLS  *tls.Config // every tunnel's (see newTunnelTLS)
	conns      *conns

	tokenWatch tokenWatch // connections to end when their token does

	inflight atomic.Int64 // exchanges started and not yet finished
	draining atomic.Bool
}

// New returns a proxy for cfg. It fails if a required dependency is missing
// or the upstream CA file cannot be read.
func New(cfg Config, deps Deps) (*Proxy, error) {
	if deps.Rules == nil || deps.Authority == nil {
		return nil, errors.New("proxy: rules and authority are required")
	}
	cfg = cfg.withDefaults()
	roots, err := upstream.Roots(cfg.UpstreamCAFile)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{
		cfg:       cfg,
		authority: deps.Authority,
		audit:     deps.Audit,
		log:       log,
		tokens:    deps.Tokens,
		observer:  deps.Observer,
		budgets:   deps.Budgets,
		ids:       audit.NewIDs(),
		conns:     newConns(),
		api:       deps.API,
		store:     deps.Store,
	}
	if p.budgets == nil {
		p.budgets = budget.New(budget.Config{})
	}
	p.setPolicy(deps.Rules)
	p.dialer = newDialer(p.policy.Load, cfg.DialTimeout)
	p.transport = newTransport(cfg, roots, p.dialer)
	p.creds = deps.Credentials
	if p.creds == nil {
		p.creds = defaultCredentials(p.transport, cfg.MintTimeout, log, deps.SharedCredentials)
	}
	p.upstreams = newUpstreams(func(perAgent bool) upstreamTransport {
		if !perAgent {
			return newClient(cfg, roots, p.dialer, p.transport, 0, log) // falls back on the minters' transport
		}
		t := newTransport(cfg, roots, p.dialer)
		t.HTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: agentHeaderTable}
		return newClient(cfg, roots, p.dialer, t, agentHeaderTable, log)
	})
	p.mitm = p.newMITM()
	p.h2 = p.newH2Server()
	p.tunnelTLS = p.newTunnelTLS()
	return p, nil
}

// SetRules makes set the rules for every request that starts from now on;
// requests in flight finish on the rules they started with.
// Values that leave the rules are still scrubbed for cfg.ScrubRetired.
func (p *Proxy) SetRules(set *rules.Set) {
	p.setPolicy(set)
	// Pooled upstream connections were dialed under the old pins.
	p.upstreams.closeIdle()
}

// Rules returns the rules in force, with the store's secrets that have a
// policy (see RefreshStored).
func (p *Proxy) Rules() *rules.Set { return p.policy.Load().set }

// Stats reports the client connections and tunnels open now, and the
// requests in flight.
func (p *Proxy) Stats() (conns, tunnels, inflight int64) {
	return p.conns.open.Load(), p.conns.tunnels.Load(), p.inflight.Load()
}

// Requests returns how many requests and CONNECTs the proxy has begun to
// handle.
func (p *Proxy) Requests() uint64 { return p.ids.Issued() }

// Draining reports whether the proxy is shutting down.
func (p *Proxy) Draining() bool { return p.draining.Load() }

// ServeHTTP implements http.Handler: CONNECT requests open intercepted
// tunnels, absolute-form requests are proxied as plain HTTP.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.mitm.ServeHTTP(keepBuffered{w}, r)
		return
	}
	p.servePlain(w, r)
}

// Listen opens the configured address.
func (p *Proxy) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	return ln, nil
}

// Serve accepts connections on ln until ctx ends, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish for at most
// ShutdownTimeout, and closes every connection and tunnel.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ConnContext:       withConn,
		ConnState:         p.connState,
		ErrorLog:          NewStdLogger(p.log),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(p.conns.listen(ln, p.cfg.MaxConns)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy: serve: %w", err)
	case <-ctx.Done():
	}
	p.draining.Store(true)
	p.h2.shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		_ = srv.Shutdown(sctx)
		// Hijacked tunnels are invisible to Shutdown: wait for their
		// requests too, and for h2 tunnels to write their last
		// responses and end (they were sent a GOAWAY).
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for (p.inflight.Load() > 0 || p.h2.open.Load() > 0) && sctx.Err() == nil {
			<-tick.C
		}
		close(done)
	}()
	select {
	case <-done:
	case <-sctx.Done():
		p.log.Warn("shutdown timeout: closing connections with requests in flight", "timeout", p.cfg.ShutdownTimeout)
	}
	p.conns.closeAll()
	p.upstreams.closeIdle()
	return nil
}

// connState arms tunnel timeouts when http.Server hands a connection over.
func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	if s != http.StateHijacked {
		return
	}
	if cc, ok := c.(*clientConn); ok {
		cc.hijacked(p.cfg.HandshakeTimeout)
	}
}

var _ http.Handler = (*Proxy)(nil)
