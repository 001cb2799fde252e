// Package transport is keyhole's upstream HTTP client: the round tripper
// that sends the agents' requests to their upstreams over verified TLS.
//
// It exists for speed. net/http's Transport runs two goroutines per
// upstream connection (a read loop and a write loop) and hands every
// request and response between them and the caller over channels; in
// keyhole's keep-alive profile that machinery was close to a third of the
// proxy's CPU. Here an HTTP/1.1 round trip runs on the caller's goroutine
// alone: it takes a pooled connection (or dials one), writes the request
// through the connection's bufio.Writer in one flush (the header and a
// small body together), reads the response with http.ReadResponse from the
// connection's bufio.Reader, and returns the connection to the pool when
// the caller has read the body to its end and the response allowed reuse;
// any other ending closes it. Only a request body of unknown or large size
// is written by a goroutine of its own, so that a response the upstream
// sends before it has read the whole body is not held up.
//
// When the upstream picks HTTP/2 by ALPN the connection is handed to
// golang.org/x/net/http2's ClientConn, pooled while it can take new
// requests; Config.MaxEncoderHeaderTableSize applies to it.
//
// What it does not do it hands to Config.Fallback, a net/http Transport
// configured alike: requests with "Expect: 100-continue", upgrades
// (WebSocket: a 101 response takes the connection over), and anything not
// https (plain-HTTP upstreams).
//
// Connections are verified TLS only: Config.DialTLS makes them, and a
// connection that is not TLS is refused. There is no proxy from the
// environment and no compression: the body is passed on as the upstream
// sent it.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// Config configures a Transport. Zero values of the optional fields work
// and their defaults are given.
type Config struct {
	// DialTLS connects to addr ("host:port") and completes a verified TLS
	// handshake whose server name is host, offering the protocols of
	// NextProtos. Required (nil: every request fails). Its errors are returned unchanged, so that
	// the caller can tell a handshake failure from a failure to connect.
	DialTLS func(ctx context.Context, addr string) (net.Conn, error)
	// ResponseHeaderTimeout bounds the wait for the response header once
	// the request is written. Zero: no bound.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout closes a pooled connection idle this long. Default
	// 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds the idle HTTP/1.1 connections kept per
	// host:port, and the HTTP/2 connections. Default 64.
	MaxIdleConnsPerHost int
	// MaxIdleConns bounds the idle HTTP/1.1 connections kept in all.
	// Default 1024.
	MaxIdleConns int
	// MaxResponseHeaderBytes bounds a response header. Default 1 MiB.
	MaxResponseHeaderBytes int64
	// MaxEncoderHeaderTableSize is the HPACK encoder table of HTTP/2
	// connections. Zero: HTTP/2's default (4096).
	MaxEncoderHeaderTableSize uint32
	// OnUnsolicited, when not nil, is told of an upstream that sent bytes
	// after a response ended (past its declared length); the connection
	// is closed. It is never given the bytes.
	OnUnsolicited func(addr string)
	// Fallback takes the requests the Transport does not send itself (see
	// the package doc). Nil: they fail.
	Fallback *http.Transport
}

// NextProtos returns the ALPN protocols the Transport handles, for the
// tls.Config of Config.DialTLS: HTTP/2 and HTTP/1.1.
func NextProtos() []string { return []string{"h2", "http/1.1"} }

// Transport is an http.RoundTripper with a pool of upstream connections
// per host:port. A Transport's connections are never shared with another
// Transport: make one per party whose connections must stay apart.
type Transport struct {
	cfg Config
	h2  *http2.Transport

	mu       sync.Mutex
	gen      uint64             // bumped by CloseIdleConnections
	idle     map[string][]*conn // per URL host, most recently used last
	nidle    int
	sweeping bool // sweep runs
	h2c      map[string][]*h2conn

	dialing map[string]*dialCall // dials in flight to hosts not known to speak HTTP/1.1
	h1      map[string]bool      // hosts whose last dial brought HTTP/1.1
}

// h2conn is a pooled HTTP/2 connection and the generation it was dialed in.
type h2conn struct {
	cc  *http2.ClientConn
	gen uint64
}

// New returns a Transport for cfg. Without cfg.DialTLS every request
// fails.
func New(cfg Config) *Transport {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxIdleConnsPerHost, 64)
	def(&cfg.MaxIdleConns, 1024)
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = 90 * time.Second
	}
	if cfg.MaxResponseHeaderBytes <= 0 {
		cfg.MaxResponseHeaderBytes = 1 << 20
	}
	if cfg.DialTLS == nil {
		cfg.DialTLS = func(context.Context, string) (net.Conn, error) {
			return nil, errors.New("transport: no DialTLS configured")
		}
	}
	return &Transport{
		cfg:  cfg,
		h2:   newH2(cfg),
		idle: make(map[string][]*conn),
		h2c:  make(map[string][]*h2conn),

		dialing: make(map[string]*dialCall),
		h1:      make(map[string]bool),
	}
}

// newH2 returns the HTTP/2 transport whose ClientConns take the
// connections on which the upstream chose h2. Its settings come from an
// http.Transport of its own that never sends a request: x/net's HTTP/2
// transport reads the response header timeout only from there.
func newH2(cfg Config) *http2.Transport {
	t1 := &http.Transport{
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
		DisableCompression:     true,
	}
	if cfg.MaxEncoderHeaderTableSize != 0 {
		t1.HTTP2 = &http.HTTP2Config{MaxEncoderHeaderTableSize: int(cfg.MaxEncoderHeaderTableSize)}
	}
	h2, err := http2.ConfigureTransports(t1)
	if err != nil { // only if t1 already spoke HTTP/2, which a new one cannot
		h2 = &http2.Transport{}
	}
	h2.DisableCompression = true
	h2.IdleConnTimeout = cfg.IdleConnTimeout
	h2.MaxEncoderHeaderTableSize = cfg.MaxEncoderHeaderTableSize
	return h2
}

// RoundTrip implements http.RoundTripper. The request's context bounds the
// whole exchange: when it ends, the connection is closed, and the round
// trip, or a read of the body, fails with the context's error.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if fallsBack(req) {
		if t.cfg.Fallback == nil {
			closeBody(req)
			return nil, errors.New("transport: request needs the fallback transport, and there is none")
		}
		return t.cfg.Fallback.RoundTrip(req)
	}
	if err := validate(req); err != nil {
		closeBody(req)
		return nil, err
	}
	addr := req.URL.Host // the pool's key; the address dialed is hostPort(addr)
	out, streaming, err := prepareBody(req)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		resp, retry, err := t.try(out, addr, streaming, attempt > 0)
		if err == nil || !retry || attempt > 0 {
			return resp, err
		}
		if out.GetBody != nil {
			if out.Body, err = out.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// try sends req once: on a pooled connection unless fresh, else on one
// dialed now. retry reports that a pooled connection was found dead and
// the request may be sent again.
func (t *Transport) try(req *http.Request, addr string, streaming, fresh bool) (resp *http.Response, retry bool, err error) {
	if !fresh {
		if resp, retry, err, ok := t.pooled(req, addr, streaming); ok {
			return resp, retry, err
		}
		if dc := t.inFlight(addr); dc != nil {
			// A dial that may bring an HTTP/2 connection to share.
			select {
			case <-dc.done:
			case <-req.Context().Done():
				closeBody(req)
				return nil, false, fmt.Errorf("transport: request to %s: %w", addr, req.Context().Err())
			}
			if resp, retry, err, ok := t.pooled(req, addr, streaming); ok {
				return resp, retry, err
			}
		}
	}
	c, cc, err := t.dial(req.Context(), addr)
	if err != nil {
		closeBody(req)
		return nil, false, err
	}
	if cc != nil {
		resp, err := cc.RoundTrip(req)
		return resp, false, err
	}
	return c.roundTrip(req, streaming, false)
}

// pooled sends req on a pooled connection to addr, if there is one (ok).
func (t *Transport) pooled(req *http.Request, addr string, streaming bool) (resp *http.Response, retry bool, err error, ok bool) {
	if h := t.h2Conn(addr); h != nil {
		resp, err := h.cc.RoundTrip(req)
		return resp, err != nil && replayable(req) && !h.cc.CanTakeNewRequest() && req.Context().Err() == nil, err, true
	}
	// A request that may be sent again skips the liveness peek (a system
	// call per request): on a connection the upstream closed while it
	// idled, it fails before any response byte and is retried on a fresh
	// one, as net/http does. One that may not is sent only on a
	// connection found alive.
	if c := t.idleConn(addr, streaming || !replayable(req)); c != nil {
		resp, retry, err := c.roundTrip(req, streaming, true)
		return resp, retry, err, true
	}
	return nil, false, nil, false
}

// dial connects to addr (a URL host): an HTTP/1.1 connection, or an HTTP/2 one
// (pooled at once) when the upstream chose h2.
func (t *Transport) dial(ctx context.Context, addr string) (*conn, *http2.ClientConn, error) {
	dc := t.lead(addr)
	c, cc, err := t.dialTLS(ctx, addr)
	if dc != nil {
		t.endDial(addr, dc, err == nil && cc == nil)
	}
	return c, cc, err
}

// dialTLS is dial, without its coordination.
func (t *Transport) dialTLS(ctx context.Context, addr string) (*conn, *http2.ClientConn, error) {
	nc, err := t.cfg.DialTLS(ctx, hostPort(addr))
	if err != nil {
		return nil, nil, err
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		nc.Close()
		return nil, nil, fmt.Errorf("transport: dial %s: the connection is not TLS", addr)
	}
	t.mu.Lock()
	gen := t.gen
	t.mu.Unlock()
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		cc, err := t.h2.NewClientConn(tc)
		if err != nil {
			tc.Close()
			return nil, nil, fmt.Errorf("transport: %s: http2: %w", addr, err)
		}
		t.putH2(addr, &h2conn{cc: cc, gen: gen})
		return nil, cc, nil
	}
	return newConn(t, addr, tc, gen), nil, nil
}

// CloseIdleConnections closes the idle connections, and makes those in
// use now close when their request ends rather than return to the pool
// (they may have been dialed under settings no longer in force). HTTP/2
// connections take no new requests and close when their streams end.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	t.gen++
	idle, h2c := t.idle, t.h2c
	t.idle, t.h2c, t.nidle = make(map[string][]*conn), make(map[string][]*h2conn), 0
	for _, l := range idle {
		for _, c := range l {
			c.pooled.Store(false)
		}
	}
	t.mu.Unlock()
	for _, l := range idle {
		for _, c := range l {
			c.timer.Stop() // (one that fired finds c gone from the pool)
			c.close()
		}
	}
	for _, l := range h2c {
		for _, h := range l {
			go h.cc.Shutdown(context.Background())
		}
	}
	if t.cfg.Fallback != nil {
		t.cfg.Fallback.CloseIdleConnections()
	}
}

// fallsBack reports whether req goes to the fallback transport.
func fallsBack(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "https" {
		return true
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return true
	}
	for _, v := range req.Header["Expect"] {
		if strings.EqualFold(strings.TrimSpace(v), "100-continue") {
			return true
		}
	}
	return false
}

// validate refuses what net/http's transport refuses, so that nothing
// malformed reaches the wire.
func validate(req *http.Request) error {
	if req.Header == nil {
		return errors.New("transport: nil Request.Header")
	}
	if req.URL.Host == "" {
		return errors.New("transport: no host in request URL")
	}
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("transport: invalid method %q", req.Method)
	}
	for _, h := range []http.Header{req.Header, req.Trailer} {
		for k, vv := range h {
			if !httpguts.ValidHeaderFieldName(k) {
				return fmt.Errorf("transport: invalid header field name %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					// The value is not named: it may be a secret.
					return fmt.Errorf("transport: invalid header field value for %q", k)
				}
			}
		}
	}
	return nil
}

// hostPort returns the address of a URL host: host:port, port 443 when
// none is given.
func hostPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), "443")
}

// replayable is net/http's rule for sending a request again after its
// connection broke: a body that can be had again, and an idempotent method
// (or an idempotency key).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, k1 := req.Header["Idempotency-Key"]
	_, k2 := req.Header["X-Idempotency-Key"]
	return k1 || k2
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

var _ http.RoundTripper = (*Transport)(nil)
