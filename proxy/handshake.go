package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
)

// A tunnel's TLS handshake is most of what a new connection costs: the
// hybrid key exchange (X25519MLKEM768), the leaf's signature, the
// transcript. What keyhole adds to it is kept to the least: one
// configuration for every tunnel, built once; the tunnel's first bytes (the
// ClientHello) read in one system call; the leaf from the authority's
// cache.

// errSNIMismatch fails a tunnel's TLS handshake whose server name is not
// the CONNECT target.
var errSNIMismatch = errors.New("keyhole: TLS server name differs from the CONNECT target")

// errNotTunnel fails a handshake on a connection that is not a tunnel's
// (never: serveTunnel makes every one).
var errNotTunnel = errors.New("keyhole: TLS handshake outside a tunnel")

// newTunnelTLS returns the TLS configuration of every tunnel, built once
// (New): the leaf is the CONNECT target's, found from the connection the
// ClientHello came on (a *helloConn, see getCertificate). A ClientHello
// naming another server fails the handshake, so an agent cannot reach one
// host through a tunnel opened to another. Session tickets are off: a
// ticket would resume a session without GetCertificate, so without the
// check of the server name against the CONNECT target. ALPN offers h2,
// http/1.1 and http/1.0 (curl --http1.0 offers only that, and a
// ClientHello with no protocol in common fails the handshake).
func (p *Proxy) newTunnelTLS() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		NextProtos:             []string{"h2", "http/1.1", "http/1.0"},
		SessionTicketsDisabled: true,
		GetCertificate:         p.getCertificate,
	}
}

// getCertificate returns the leaf of the tunnel whose ClientHello hello
// is, after checking the server name it asks for against the CONNECT
// target; a mismatch is audited as host_mismatch.
func (p *Proxy) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	hc, ok := hello.Conn.(*helloConn)
	if !ok || hc.t == nil {
		return nil, errNotTunnel
	}
	dest := hc.t.dest.host
	if hello.ServerName != "" {
		sni, err := rules.CanonicalHost(hello.ServerName)
		if err != nil || sni != dest {
			ref := inject.Refuse(inject.HostMismatch, "", dest,
				"the TLS server name does not match the CONNECT target %s", dest)
			p.auditRefusal(hc.rec, ref)
			return nil, errSNIMismatch
		}
	}
	return p.authority.Leaf(dest)
}

// handshakeDone switches a tunnel's connection from its handshake to its
// requests: for HTTP/1.x the idle timeout per operation, the header
// timeout for the first request, and the coalescing of small writes; an
// h2 connection leaves the HTTP/1.1 framing off (see forH2).
func (p *Proxy) handshakeDone(cc *clientConn, protocol string) {
	if cc == nil {
		return
	}
	if protocol == "h2" {
		cc.forH2()
		return
	}
	cc.setTimeout(p.cfg.IdleTimeout)
	cc.bound(p.cfg.HeaderTimeout, p.cfg.HeaderTimeout) // for the first request
	cc.coalesceWrites(true)
}

// helloSize is the most serveTunnel reads of a tunnel's first bytes at
// once: a ClientHello with a post-quantum key share is ~1.5–2 KiB.
const helloSize = 4 << 10

// helloBufs holds the buffers of tunnels' first reads, which live until
// the handshake (or the first plain request) has consumed them.
var helloBufs = sync.Pool{New: func() any { b := make([]byte, helloSize); return &b }}

// helloConn is a tunnel's connection at its start: what serveTunnel read
// first, to tell TLS from plain HTTP (a whole ClientHello, usually), is
// read again from it before the connection, so that the TLS handshake
// takes the ClientHello in one system call rather than three (its first
// byte, then what its buffer holds). It also names the tunnel for
// getCertificate.
type helloConn struct {
	net.Conn
	buf  *[]byte // nil once read
	r, n int     // (*buf)[r:n] is still to be read
	t    *tunnel
	rec  *audit.Record // the CONNECT's record, for a refusal in the handshake
}

// readHello reads what the client has sent first into a helloConn on
// client, at least one byte.
func readHello(client net.Conn, t *tunnel, rec *audit.Record) (*helloConn, error) {
	buf := helloBufs.Get().(*[]byte)
	n, err := client.Read(*buf)
	for n == 0 && err == nil {
		n, err = client.Read(*buf)
	}
	if n == 0 {
		helloBufs.Put(buf)
		return nil, err
	}
	return &helloConn{Conn: client, buf: buf, n: n, t: t, rec: rec}, nil
}

// first is the first byte the client sent.
func (c *helloConn) first() byte { return (*c.buf)[0] }

// Read reads what readHello read, then the connection. It is called by
// the connection's one reader only.
func (c *helloConn) Read(p []byte) (int, error) {
	if c.buf == nil {
		return c.Conn.Read(p)
	}
	n := copy(p, (*c.buf)[c.r:c.n])
	c.r += n
	if c.r == c.n {
		helloBufs.Put(c.buf)
		c.buf = nil
	}
	return n, nil
}

// CloseWrite half-closes the connection when it can.
func (c *helloConn) CloseWrite() error { return closeWrite(c.Conn) }
