package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"keyhole/audit"
	"keyhole/inject"
)

// The HTTP/1.x side of a tunnel is keyhole's own loop, one goroutine per
// tunnel: read a request, run its exchange, write the response into the
// client connection, end the exchange, and read the next. Between requests
// an idle tunnel holds no read buffer: it waits on a one-byte read and
// takes a pooled bufio.Reader when a request begins, and gives it back
// when the exchange ends with nothing read ahead (pipelined requests keep
// theirs).

// h1ReadSize is the size of the pooled readers requests are parsed from.
const h1ReadSize = 4 << 10

var h1Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1ReadSize) }}

// h1conn serves the HTTP/1.x requests of one tunnel.
type h1conn struct {
	p      *Proxy
	t      *tunnel
	conn   net.Conn // decrypted (a *tls.Conn), or a tunnel without TLS
	scheme string   // of every request's URL: https when decrypted
	host   string   // the CONNECT authority, for a request without Host
	src    h1source
	br     *bufio.Reader // nil between requests when nothing is buffered
}

// h1source is what a tunnel's reader reads: the byte that began the
// request, then the connection. It keeps the last read error, which tells
// a connection that failed from a request that is malformed.
type h1source struct {
	conn    net.Conn
	first   [1]byte
	pending bool
	err     error
}

func (s *h1source) Read(p []byte) (int, error) {
	if s.pending && len(p) > 0 {
		s.pending = false
		p[0] = s.first[0]
		return 1, nil
	}
	n, err := s.conn.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// serveHTTP1 serves the HTTP/1.x requests of t on conn (decrypted, or a
// tunnel without TLS) on a goroutine of its own, which closes conn when
// the tunnel ends. connect is the CONNECT request.
func (p *Proxy) serveHTTP1(connect *http.Request, conn net.Conn, t *tunnel) {
	h := &h1conn{p: p, t: t, conn: conn, scheme: "http", host: connect.Host}
	if t.tls {
		h.scheme = "https"
	}
	h.src.conn = conn
	go h.serve()
}

func (h *h1conn) serve() {
	defer h.close()
	for h.serveOne() {
	}
}

// serveOne reads one request and answers it. It reports whether the
// connection carries another.
func (h *h1conn) serveOne() bool {
	req, err := h.readRequest()
	if err != nil {
		if h.src.err == nil {
			h.badRequest()
		}
		return false
	}
	if !h.exchange(req) {
		return false
	}
	if h.br.Buffered() == 0 { // nothing read ahead: idle without a buffer
		h1Readers.Put(h.br)
		h.br = nil
	}
	return true
}

// close ends the tunnel and gives its reader back.
func (h *h1conn) close() {
	_ = h.conn.Close()
	if h.br != nil {
		h.br.Reset(nil)
		h1Readers.Put(h.br)
		h.br = nil
	}
}

// readRequest waits for the next request and reads its header. The
// header's bounds (size and time) are the client connection's (see
// clientConn.limitHeaders and bound).
func (h *h1conn) readRequest() (*http.Request, error) {
	if h.br == nil {
		if _, err := io.ReadFull(h.conn, h.src.first[:]); err != nil {
			h.src.err = err
			return nil, err
		}
		h.src.pending = true
		h.br = h1Readers.Get().(*bufio.Reader)
		h.br.Reset(&h.src)
	}
	req, err := http.ReadRequest(h.br)
	if err != nil {
		return nil, err
	}
	// The target is origin-form (or absolute-form, whose host x.target
	// checks against Host): the URL gets its scheme, and the host of the
	// Host header, without being formatted and parsed again.
	req.URL.Scheme = h.scheme
	if req.URL.Host == "" {
		req.URL.Host = authorityHost(req.Host)
		if req.Host == "" {
			req.URL.Host = h.host // HTTP/1.0 without Host
		}
	}
	return req, nil
}

// authorityHost is the host (and port) of a Host header as a URL with it
// as its authority would have: up to a path, query or fragment, after any
// userinfo. A Host header that is not just that host then disagrees with
// the URL, and x.target refuses the request as a host mismatch.
func authorityHost(h string) string {
	if i := strings.IndexAny(h, "/?#"); i >= 0 {
		h = h[:i]
	}
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	return h
}

// exchange runs req through the tunnel and writes its response. It
// reports whether the connection carries another request.
func (h *h1conn) exchange(req *http.Request) bool {
	var cont *continueBody
	if req.ProtoAtLeast(1, 1) && req.Body != http.NoBody && headerHasToken(req.Header, "Expect", "100-continue") {
		cont = &continueBody{ReadCloser: req.Body, client: h.conn}
		req.Body = cont
	}
	resp := h.t.exchange(req)
	if cont != nil {
		cont.stop()
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		h.upgrade(resp)
		_ = req.Body.Close()
		return false
	}
	// A "close" from either side ends the connection (RFC 9112 §9.6), and
	// so does a final answer sent before the client was told to send the
	// body it announced: that body is unread (RFC 9110 §10.1.1).
	closing := req.Close || resp.Close || headerHasToken(resp.Header, "Connection", "close") ||
		(cont != nil && !cont.sentContinue())
	err := h.writeResponse(req, resp, closing)
	_ = resp.Body.Close() // writes the audit record
	_ = req.Body.Close()  // finished before the next request is read
	h.t.conn.endExchange()
	return err == nil && !closing
}

// exchange runs one request of the tunnel: through Proxy.handle, or
// answered with the tunnel's refusal when the CONNECT was refused for
// policy. It always returns a response for the agent.
func (t *tunnel) exchange(req *http.Request) *http.Response {
	t.conn.startExchange()
	var resp *http.Response
	if t.refusal != nil {
		resp = t.p.refuseInTunnel(req, t)
	} else {
		resp = t.p.handle(req, t.caller, &t.dest, t.conn)
	}
	if t.p.draining.Load() {
		resp.Close = true
	}
	return resp
}

// upgrade completes a WebSocket handshake inside the tunnel: the 101, then
// frames relayed both ways, starting with those the client sent with the
// upgrade request, until either side stops. resp.Body is the upstream
// connection, already wrapped by the scrubber.
func (h *h1conn) upgrade(resp *http.Response) {
	defer resp.Body.Close()
	// Frames go both ways from two goroutines: nothing may be held back.
	h.t.conn.coalesceWrites(false)
	upstream, ok := resp.Body.(io.ReadWriter)
	if !ok {
		return
	}
	if err := h.writeHead(resp, h1Upgrade); err != nil {
		return
	}
	// The relay may still read br after the tunnel ends: br is its own
	// from now on, never back in the pool.
	br := h.br
	h.br = nil
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(upstream, br) // what is buffered, then the connection
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(h.conn, upstream)
		done <- struct{}{}
	}()
	<-done
}

// badRequest answers a request that could not be parsed with a JSON 400,
// audited, and the tunnel closes. What the client sent is not quoted: a
// request line or header can hold a token.
func (h *h1conn) badRequest() {
	t := h.t
	rec := audit.Record{Time: time.Now(), RequestID: h.p.ids.Next(), Scheme: h.scheme, Host: t.dest.host, Port: t.dest.port}
	t.caller.stamp(&rec)
	ref := inject.Refuse(inject.BadRequest, "", t.dest.host,
		"keyhole could not parse this request as HTTP/1.1 (malformed request line, header or framing); the connection is closed")
	h.p.auditRefusal(&rec, ref)
	h.p.log.Debug("malformed request inside a tunnel: answered 400, connection closed",
		"host", t.dest.host, "port", t.dest.port, "request_id", rec.RequestID)
	resp := refusalResponse(nil, ref, rec.RequestID)
	_ = h.writeResponse(&http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1}, resp, true)
	_ = t.conn.flushPending()
}

// continueBody sends "100 Continue" when the exchange first reads a body
// the client announced with Expect: 100-continue, and not after the
// response is known (stop). A body the client was not asked for is never
// read after that: its bytes would come from the tunnel's reader, which
// goes back to the pool.
type continueBody struct {
	io.ReadCloser
	client   io.Writer
	mu       sync.Mutex
	stopped  bool
	sent     bool
	writeErr error
}

func (b *continueBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.sent:
	case b.stopped:
		b.writeErr = errNotContinued
	default:
		b.sent = true
		_, b.writeErr = io.WriteString(b.client, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	err := b.writeErr
	b.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return b.ReadCloser.Read(p)
}

// errNotContinued is the read error of a body the client was never asked
// to send.
var errNotContinued = errors.New("request body not sent: the response came first")

func (b *continueBody) stop() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
}

func (b *continueBody) sentContinue() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent
}

// Close does not drain a body the client was never asked to send: the
// response closes the connection instead.
func (b *continueBody) Close() error {
	if !b.sentContinue() {
		return nil
	}
	return b.ReadCloser.Close()
}
