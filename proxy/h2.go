package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"keyhole/scrub"
)

// Bounds of an h2 tunnel. The http2 server's own defences stay on: it
// limits the handlers it runs and the control frames it queues for a
// connection (rapid reset, ping, settings and WINDOW_UPDATE floods are
// answered with GOAWAY), and it refuses a header list larger than
// MaxHeaderBytes with 431 on that stream.
const (
	// h2MaxStreams is SETTINGS_MAX_CONCURRENT_STREAMS: the streams an
	// agent may have open at once on one tunnel.
	h2MaxStreams = 250
	// h2PingTimeout is how long a health-check ping may go unanswered.
	h2PingTimeout = 15 * time.Second
)

// forH2 switches a tunnel's client connection to HTTP/2 once its TLS
// handshake has agreed on h2: the handshake bound and the per-operation
// deadlines stop, and none of the HTTP/1.1 framing (header limit and
// timeout between exchanges, write coalescing, the one body timer) is
// used. The http2 server bounds the connection instead (see serveH2).
func (c *clientConn) forH2() {
	if c == nil {
		return
	}
	c.unbound()
	c.timeout.Store(0)
	_ = c.Conn.SetDeadline(time.Time{})
}

// h2Server is the proxy's one HTTP/2 server: every h2 tunnel is a
// connection of it, so that shutdown can send each a graceful GOAWAY.
type h2Server struct {
	srv  *http2.Server
	base *http.Server // holds the settings http2 takes from net/http, and the shutdown hook
	// open counts the h2 tunnels being served: after the GOAWAY of a
	// shutdown, the http2 server still writes the last responses of a
	// tunnel after their exchanges finished, so shutdown waits for this.
	open atomic.Int64
}

func (p *Proxy) newH2Server() *h2Server {
	h := &h2Server{
		srv: &http2.Server{
			MaxConcurrentStreams: h2MaxStreams,
			// Closes a connection without open streams after the idle
			// timeout; a silent peer with streams open is pinged.
			IdleTimeout:     p.cfg.IdleTimeout,
			ReadIdleTimeout: p.cfg.IdleTimeout,
			PingTimeout:     h2PingTimeout,
			// A peer that stops reading while keyhole has frames to send
			// is cut off after the idle timeout: h2Conn bounds each write
			// (the server's WriteByteTimeout would set two deadlines per
			// write).
		},
		base: &http.Server{
			MaxHeaderBytes: p.cfg.MaxHeaderBytes,
			ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		},
	}
	// Only for the shutdown hook and the settings: base never serves.
	_ = http2.ConfigureServer(h.base, h.srv)
	return h
}

// shutdown sends every h2 tunnel a GOAWAY: streams in flight finish, the
// agent opens no new ones on it.
func (h *h2Server) shutdown() {
	_ = h.base.Shutdown(context.Background()) // returns at once: base tracks no connection
}

// serveH2 serves the streams of an h2 tunnel on tc until the agent, the
// idle timeout or shutdown ends it, then closes tc. Each stream is one
// exchange (see h2Stream); the server writes through an h2Conn.
func (p *Proxy) serveH2(tc *tls.Conn, t *tunnel) {
	p.h2.open.Add(1)
	defer p.h2.open.Add(-1)
	conn := newH2Conn(tc, p.cfg.IdleTimeout)
	defer conn.Close()
	p.h2.srv.ServeConn(conn, &http2.ServeConnOpts{
		Context:    context.Background(),
		BaseConfig: p.h2.base,
		Handler:    &h2Stream{p: p, t: t},
	})
}

// h2Stream runs each stream of an h2 tunnel through Proxy.handle, like a
// request of an HTTP/1.1 tunnel: :authority is checked against the CONNECT
// target as Host is, the tunnel's credentials are checked again for every
// stream (expiry, revocation, reload), and a refusal is the response of
// that stream only.
type h2Stream struct {
	p *Proxy
	t *tunnel
}

func (h *h2Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.URL.Scheme = "https"
	r.URL.Host = r.Host // :authority
	if r.ContentLength == 0 {
		// Without a body: the transport must not send one.
		r.Body = http.NoBody
	}
	// Streams run concurrently: each checks and uses a copy of the
	// tunnel's caller.
	c := *h.t.caller
	var resp *http.Response
	if h.t.refusal != nil {
		resp = h.p.refuseInTunnel(r, &tunnel{p: h.p, caller: &c, dest: h.t.dest, refusal: h.t.refusal})
	} else {
		resp = h.p.handle(r, &c, &h.t.dest, nil)
	}
	writeH2Response(w, r, resp)
}

// writeH2Response sends resp on an h2 stream: the header, the body as it
// arrives (flushed after each read when its length is unknown, as gRPC and
// event streams need), then the trailers the upstream sent. A body that
// breaks resets the stream, so a truncated body never looks complete.
func writeH2Response(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	removeHopHeaders(h, false)
	if resp.ContentLength >= 0 && resp.Header.Get("Content-Length") == "" && bodyAllowed(r.Method, resp.StatusCode) {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	switch err := relayBody(w, resp); {
	case errors.Is(err, errAgentWrite):
		return
	case errors.Is(err, scrub.ErrUnmaskable) && scrub.IsGRPC(resp.Header):
		grpcRefusal(h)
		return
	case err != nil:
		panic(http.ErrAbortHandler) // RST_STREAM for this stream only
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
}

var _ http.Handler = (*h2Stream)(nil)
