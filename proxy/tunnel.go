package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/elazarl/goproxy"

	"keyhole/audit"
)

// A tunnel's inner loop is keyhole's: goproxy decides the CONNECT (see
// handleConnect) and hands over the hijacked connection; keyhole answers
// 200, does the TLS handshake itself, offering h2, http/1.1 and http/1.0
// by ALPN, and then serves the connection by the protocol agreed:
//
//   - h2: golang.org/x/net/http2's server, one exchange per stream (h2.go);
//   - anything else (http/1.1, http/1.0, no ALPN): goproxy's HTTP/1 loop,
//     as before, run by a second goproxy (inner) over the decrypted
//     connection, so the HTTP/1.1 path keeps its behaviour byte for byte.
//
// A tunnel that does not start with a TLS handshake goes to the inner
// loop undecrypted, as goproxy served it before.

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// connectHijack is the ConnectAction that gives a decided tunnel to
// serveTunnel.
func (p *Proxy) connectHijack(t *tunnel, rec audit.Record) *goproxy.ConnectAction {
	return &goproxy.ConnectAction{
		Action: goproxy.ConnectHijack,
		Hijack: func(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
			p.serveTunnel(req, client, t, rec)
		},
	}
}

// serveTunnel runs a tunnel on client, the hijacked connection of the
// CONNECT req, until it ends. It runs on the CONNECT's goroutine.
func (p *Proxy) serveTunnel(req *http.Request, client net.Conn, t *tunnel, rec audit.Record) {
	if _, err := io.WriteString(client, connectOK(req)); err != nil {
		_ = client.Close()
		return
	}
	conn, err := readHello(client, t, &rec)
	if err != nil {
		_ = client.Close()
		return
	}
	if conn.first() != tlsRecordHandshake {
		p.serveHTTP1(req, conn, t)
		return
	}
	tc := tls.Server(conn, p.tunnelTLS)
	if err := tc.HandshakeContext(context.Background()); err != nil {
		p.log.Debug("tunnel TLS handshake failed", "host", t.dest.host, "port", t.dest.port, "error", err)
		_ = tc.Close()
		return
	}
	t.tls = true
	proto := tc.ConnectionState().NegotiatedProtocol
	p.handshakeDone(t.conn, proto)
	if proto == "h2" {
		p.serveH2(tc, t)
		return
	}
	p.serveHTTP1(req, tc, t)
}

// connectOK is goproxy's answer to an accepted CONNECT, in the request's
// HTTP version.
func connectOK(r *http.Request) string {
	major, minor := r.ProtoMajor, r.ProtoMinor
	if major == 0 {
		major, minor = 1, 1
	}
	return fmt.Sprintf("HTTP/%d.%d 200 OK\r\n\r\n", major, minor)
}

// tunnelKey carries a tunnel to the inner goproxy's CONNECT handler.
type tunnelKey struct{}

// serveHTTP1 runs goproxy's HTTP/1 loop on conn (decrypted, or a tunnel
// without TLS) for t. The loop runs on a goroutine of its own and closes
// conn when it ends.
func (p *Proxy) serveHTTP1(req *http.Request, conn net.Conn, t *tunnel) {
	ctx := context.WithValue(context.WithoutCancel(req.Context()), tunnelKey{}, t)
	p.inner.ServeHTTP(&innerWriter{conn: conn}, req.WithContext(ctx))
}

// newInner configures the goproxy that runs the HTTP/1 loop of a tunnel
// keyhole has opened: it takes the connection innerWriter hands it as if
// it had hijacked it, and sends every request through the tunnel's
// RoundTrip.
func (p *Proxy) newInner() *goproxy.ProxyHttpServer {
	g := p.newGoproxy()
	g.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		t, _ := ctx.Req.Context().Value(tunnelKey{}).(*tunnel)
		if t == nil {
			return goproxy.RejectConnect, host
		}
		ctx.RoundTripper = t
		// No TLSConfig: the connection handed over is already decrypted
		// (or never was TLS), so goproxy reads requests off it directly.
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm}, host
	})
	return g
}

// innerWriter is the ResponseWriter the inner goproxy gets: hijacking it
// yields the tunnel's connection, with goproxy's "200 OK" (already sent by
// serveTunnel) swallowed.
type innerWriter struct {
	conn net.Conn
	h    http.Header
}

func (w *innerWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header)
	}
	return w.h
}
func (w *innerWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *innerWriter) WriteHeader(int)             {}

// Hijack implements http.Hijacker.
func (w *innerWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	empty := bufio.NewReaderSize(strings.NewReader(""), 16)
	return &okSwallower{Conn: w.conn}, bufio.NewReadWriter(empty, bufio.NewWriterSize(io.Discard, 16)), nil
}

// okSwallower drops the first write to it, goproxy's answer to the
// CONNECT, which keyhole sent before the handshake.
type okSwallower struct {
	net.Conn
	wrote atomic.Bool
}

func (c *okSwallower) Write(p []byte) (int, error) {
	if !c.wrote.Load() && c.wrote.CompareAndSwap(false, true) {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection when it can.
func (c *okSwallower) CloseWrite() error { return closeWrite(c.Conn) }

// bufferedConn reads first what the CONNECT's server had buffered past
// the request (a ClientHello sent in the same write), then the connection.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection when it can.
func (c *bufferedConn) CloseWrite() error { return closeWrite(c.Conn) }

// keepBuffered wraps the ResponseWriter of a CONNECT so that the
// connection goproxy hijacks still yields the bytes net/http read ahead:
// goproxy drops them for a ConnectHijack.
type keepBuffered struct {
	http.ResponseWriter
}

// Hijack implements http.Hijacker.
func (w keepBuffered) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || rw.Reader.Buffered() == 0 {
		return c, rw, err
	}
	buffered, _ := rw.Reader.Peek(rw.Reader.Buffered())
	r := io.MultiReader(strings.NewReader(string(buffered)), c)
	return &bufferedConn{Conn: c, r: r}, bufio.NewReadWriter(bufio.NewReaderSize(strings.NewReader(""), 16), rw.Writer), nil
}

// closeWrite half-closes c when it can (a TCP connection, or one wrapping
// it), as tunnels do at the end.
func closeWrite(c net.Conn) error {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}
