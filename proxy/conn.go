package proxy

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// conns tracks every client connection the proxy accepted, so that shutdown
// can close hijacked tunnels (which http.Server forgets) and so that tunnels
// get the timeouts http.Server stops applying once a connection is hijacked.
type conns struct {
	mu  sync.Mutex
	set map[*clientConn]struct{}

	open    atomic.Int64 // accepted and not yet closed
	tunnels atomic.Int64 // hijacked (CONNECT tunnels, upgrades) and not yet closed
}

func newConns() *conns { return &conns{set: make(map[*clientConn]struct{})} }

// listener wraps a net.Listener so that every accepted connection is a
// *clientConn, and at most max (0: unlimited) are open at once.
type listener struct {
	net.Listener
	conns  *conns
	sem    chan struct{} // nil: unlimited
	done   chan struct{} // closed by Close, to wake an Accept waiting for a slot
	closed sync.Once
}

func (c *conns) listen(ln net.Listener, max int) *listener {
	l := &listener{Listener: ln, conns: c, done: make(chan struct{})}
	if max > 0 {
		l.sem = make(chan struct{}, max)
	}
	return l
}

// Accept waits for a free slot, then for a connection.
func (l *listener) Accept() (net.Conn, error) {
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.sem != nil {
			<-l.sem
		}
		return nil, err
	}
	cc := &clientConn{Conn: c, owner: l.conns, sem: l.sem}
	l.conns.add(cc)
	return cc, nil
}

// Close closes the listener and wakes a waiting Accept.
func (l *listener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (c *conns) add(cc *clientConn) {
	c.open.Add(1)
	c.mu.Lock()
	c.set[cc] = struct{}{}
	c.mu.Unlock()
}

func (c *conns) remove(cc *clientConn) {
	c.open.Add(-1)
	c.mu.Lock()
	delete(c.set, cc)
	c.mu.Unlock()
}

// closeAll closes every tracked connection.
func (c *conns) closeAll() {
	c.mu.Lock()
	all := make([]*clientConn, 0, len(c.set))
	for cc := range c.set {
		all = append(all, cc)
	}
	c.mu.Unlock()
	for _, cc := range all {
		_ = cc.Close()
	}
}

// clientConn is an accepted client connection. Once hijacked (see
// hijacked), every Read and Write gets a deadline of now plus the current
// timeout: the handshake timeout until the inner TLS handshake completes,
// then the idle timeout. A peer that stays silent, or stops reading, that
// long is cut off.
type clientConn struct {
	net.Conn
	owner *conns
	sem   chan struct{}

	timeout atomic.Int64 // nanoseconds; 0 until hijacked
	tunnel  atomic.Bool
	// The deadlines last set, in nanoseconds since the Unix epoch. A
	// deadline is moved only when it would move by more than a sixteenth
	// of the timeout, so a busy tunnel does not reset a runtime timer on
	// every read and write; the timeout is then exact to within 1/16.
	readBy, writeBy atomic.Int64
	closing         sync.Once
	closeErr        error
	closed          atomic.Bool // Close has begun

	// The HTTP/1.1 framing state of a tunnel: unused by an h2 tunnel.
	h1Framing
}

// bound closes the connection unless the phase it starts ends within d:
// a tunnel's inner TLS handshake (bounded from the CONNECT), then each
// inner request's header (from the end of the handshake for the first,
// from its first byte for the next ones) up to startExchange. header is
// the bound of each header. The first call must come before the tunnel's
// goroutine starts.
func (c *clientConn) bound(d, header time.Duration) {
	c.headerTimeout.Store(int64(header))
	c.headerArmed.Store(true)
	if t := c.phase.Load(); t != nil {
		t.Reset(d)
		return
	}
	c.phase.Store(time.AfterFunc(d, func() { _ = c.Close() }))
}

// unbound stops the running phase bound.
func (c *clientConn) unbound() {
	if t := c.phase.Load(); t != nil {
		t.Stop()
	}
}

// boundHeader starts the bound of a request header when its first bytes
// arrive between two exchanges, at now: lazily (see armHeaderBound).
func (c *clientConn) boundHeader(n int, now int64) {
	if d := c.headerTimeout.Load(); d > 0 && n > 0 && !c.inExchange.Load() && c.headerArmed.CompareAndSwap(false, true) {
		c.headerStart.Store(now)
	}
}

// armHeaderBound runs before a read that a header begun in an earlier
// read may wait on: it arms phase for what is left of the header's time,
// or closes the connection if none is. It reports whether the connection
// may still be read.
func (c *clientConn) armHeaderBound(now int64) bool {
	start := c.headerStart.Load()
	if start == 0 || c.inExchange.Load() || !c.headerStart.CompareAndSwap(start, 0) {
		return true
	}
	left := time.Duration(c.headerTimeout.Load() - (now - start))
	if left <= 0 {
		_ = c.Close()
		return false
	}
	c.phase.Load().Reset(left)
	return true
}

// errHeaderTooLarge ends a tunnel whose client sent a longer request
// header than the limit.
var errHeaderTooLarge = errors.New("request header too large")

// errHeaderTimeout ends a tunnel whose client took longer than the header
// timeout to send a request header.
var errHeaderTimeout = errors.New("request header timeout")

// limitHeaders bounds each request header read inside the tunnel to limit
// bytes; exceeded is called once when a client goes past it, and the
// connection is closed.
func (c *clientConn) limitHeaders(limit int64, exceeded func()) {
	c.onOverLimit = exceeded
	c.headerLimit.Store(limit)
}

// startExchange stops counting header bytes while a request's body is read
// and its response written.
func (c *clientConn) startExchange() {
	if c != nil {
		c.inExchange.Store(true)
		if c.headerStart.Swap(0) == 0 {
			c.unbound() // the bound was armed: the first header, or a slow one
		}
	}
}

// endExchange counts header bytes again, for the next request, and sends
// what is left of the response.
func (c *clientConn) endExchange() {
	_ = c.flushPending()
	if c != nil {
		c.betweenBytes.Store(0)
		c.inExchange.Store(false)
		c.headerStart.Store(0)
		c.headerArmed.Store(false)
	}
}

// overHeaderLimit reports whether the client has sent more than the limit
// since the last exchange; the first time, it reports it and closes the
// connection.
func (c *clientConn) overHeaderLimit() bool {
	limit := c.headerLimit.Load()
	if limit == 0 || c.inExchange.Load() || c.betweenBytes.Load() <= limit {
		return false
	}
	if c.overLimit.CompareAndSwap(false, true) {
		if c.onOverLimit != nil {
			c.onOverLimit()
		}
		_ = c.Close()
	}
	return true
}

// countHeader counts n bytes read between exchanges.
func (c *clientConn) countHeader(n int) {
	if n > 0 && c.headerLimit.Load() != 0 && !c.inExchange.Load() {
		c.betweenBytes.Add(int64(n))
	}
}

// hijacked marks the connection as taken over from http.Server and starts
// applying handshake, a timeout for the coming inner TLS handshake.
func (c *clientConn) hijacked(handshake time.Duration) {
	if c.tunnel.CompareAndSwap(false, true) {
		c.owner.tunnels.Add(1)
	}
	c.timeout.Store(int64(handshake))
	c.readBy.Store(0)
	c.writeBy.Store(0)
}

// setTimeout changes the per-operation timeout of a hijacked connection.
func (c *clientConn) setTimeout(d time.Duration) {
	if c.tunnel.Load() {
		c.timeout.Store(int64(d))
		c.readBy.Store(0)
		c.writeBy.Store(0)
	}
}

func (c *clientConn) Read(p []byte) (int, error) {
	d := c.timeout.Load()
	if d <= 0 {
		return c.Conn.Read(p)
	}
	if err := c.flushPending(); err != nil {
		return 0, err
	}
	now := time.Now().UnixNano()
	if by, ok := nextDeadline(&c.readBy, d, now); ok {
		_ = c.Conn.SetReadDeadline(by)
	}
	if c.overHeaderLimit() {
		return 0, errHeaderTooLarge
	}
	if !c.armHeaderBound(now) {
		return 0, errHeaderTimeout
	}
	n, err := c.Conn.Read(p)
	c.countHeader(n)
	c.boundHeader(n, now)
	c.closeOnTimeout(err)
	return n, err
}

func (c *clientConn) Write(p []byte) (int, error) {
	d := c.timeout.Load()
	if d <= 0 {
		return c.Conn.Write(p)
	}
	if by, ok := nextDeadline(&c.writeBy, d, time.Now().UnixNano()); ok {
		_ = c.Conn.SetWriteDeadline(by)
	}
	if !c.coalesce.Load() {
		n, err := c.Conn.Write(p)
		c.closeOnTimeout(err)
		return n, err
	}
	n, err := c.coalescedWrite(p)
	c.closeOnTimeout(err) // outside wmu: Close flushes, which takes it
	return n, err
}

// closeOnTimeout closes a tunnel whose peer let a deadline pass: the code
// reading a hijacked connection (goproxy's) retries a timed-out read, and
// each retry would wait the whole timeout again.
func (c *clientConn) closeOnTimeout(err error) {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		_ = c.Close()
	}
}

// nextDeadline returns now (Unix nanoseconds) plus timeout d, and whether
// that differs enough from the deadline last set (held in last) to be
// worth setting.
func nextDeadline(last *atomic.Int64, d, now int64) (time.Time, bool) {
	by := now + d
	if prev := last.Load(); prev != 0 && by-prev < d/16 && by >= prev {
		return time.Time{}, false
	}
	last.Store(by)
	return time.Unix(0, by), true
}

// Close closes the connection once and releases its slot.
func (c *clientConn) Close() error {
	c.closing.Do(func() {
		c.closed.Store(true)
		// Send what is held back, unless a write is under way (it may be
		// stalled on a peer that stopped reading: closing must not wait).
		if c.coalesce.Load() && c.wmu.TryLock() {
			if c.pending != nil && c.werr == nil {
				_, _ = c.Conn.Write(*c.pending)
			}
			c.releasePending()
			c.wmu.Unlock()
		}
		c.unbound()
		c.closeErr = c.Conn.Close()
		if c.tunnel.Load() {
			c.owner.tunnels.Add(-1)
		}
		c.owner.remove(c)
		if c.sem != nil {
			<-c.sem
		}
	})
	return c.closeErr
}

// isClosed reports whether the connection was closed through Close.
func (c *clientConn) isClosed() bool { return c.closed.Load() }

// CloseWrite half-closes a TCP connection, as tunnels do at the end.
func (c *clientConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}

type connKey struct{}

// withConn is http.Server's ConnContext: it lets handlers find their
// *clientConn.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*clientConn); ok {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// connFrom returns the client connection a request arrived on, or nil.
func connFrom(ctx context.Context) *clientConn {
	cc, _ := ctx.Value(connKey{}).(*clientConn)
	return cc
}
