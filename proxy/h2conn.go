package proxy

import (
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"time"
)

// h2Conn is the connection an h2 tunnel's http2 server writes to: the
// tunnel's TLS connection, with the frames of streams that finish
// together sent in one TLS record and one system call.
//
// The http2 server writes frames into a small buffer and flushes it
// whenever its write queue is empty. A stream's handler hands over its
// response a frame at a time (HEADERS, then DATA with END_STREAM),
// waiting for each to be taken, and the server is one goroutine among the
// handlers: its queue empties after nearly every frame, so each frame
// was a record and a write of its own (and a write on loopback also runs
// the receiver's network stack), 23% of an h2 tunnel's CPU.
//
// Write therefore only takes the bytes, and a sender goroutine writes
// them once every goroutine already runnable has had its turn (it yields
// once first): the handlers about to send their frames and the serve loop
// writing them add theirs meanwhile, and all of it goes out in one write.
// Nothing waits on a timer, so an idle connection adds no latency; a
// write of h2DirectWrite bytes or more with nothing held (a large DATA
// frame) is sent at once by its caller, without a copy. At most
// h2MaxPending bytes are held: a Write past that waits for the sender, so
// a peer that stops reading holds the serve loop back as before.
//
// The sender bounds each write with the write timeout (the http2
// server's WriteByteTimeout, which h2Conn replaces: a TLS connection
// whose write timed out cannot be written again, so the server's retry
// after progress never helped), with a deadline moved only when it would
// move by more than a sixteenth of the timeout (see nextDeadline). A
// failed write closes the connection, so that the serve loop, reading,
// ends; every later Write returns the error. Close sends what is held
// first, within h2CloseFlush.
type h2Conn struct {
	*tls.Conn
	timeout    time.Duration // for each write; 0: none
	closeFlush time.Duration // h2CloseFlush

	mu      sync.Mutex
	changed sync.Cond // broadcast when pending is taken or sending ends
	pending *[]byte   // bytes taken and not yet sent; nil: none
	sending bool      // a sender runs, or a caller writes directly
	closing bool
	err     error // the first write's error, sticky
	writeBy int64 // the write deadline last set, Unix nanoseconds; mu held
}

const (
	// h2MaxPending bounds the bytes an h2Conn holds.
	h2MaxPending = 64 << 10
	// h2DirectWrite is the size from which a write with nothing held is
	// sent at once.
	h2DirectWrite = 16 << 10
	// h2CloseFlush bounds Close's sending of what is held, as tls.Conn
	// bounds its close_notify alert.
	h2CloseFlush = 5 * time.Second
)

// h2PendingBuffers holds the buffers of held bytes between bursts, so an
// idle connection holds none.
var h2PendingBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func newH2Conn(tc *tls.Conn, timeout time.Duration) *h2Conn {
	c := &h2Conn{Conn: tc, timeout: timeout, closeFlush: h2CloseFlush}
	c.changed.L = &c.mu
	return c
}

// Write takes p to be sent by the sender, or sends it at once when it is
// large and nothing is held.
func (c *h2Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && !c.closing && c.pending != nil && len(*c.pending)+len(p) > h2MaxPending {
		c.changed.Wait()
	}
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closing:
		c.mu.Unlock()
		return 0, net.ErrClosed
	case !c.sending && len(p) >= h2DirectWrite:
		c.sending = true
		c.armWrite()
		c.mu.Unlock()
		n, err := c.Conn.Write(p)
		c.mu.Lock()
		c.sent(err)
		if c.pending != nil && c.err == nil {
			go c.send() // taken during the write, by another caller
		} else {
			c.sending = false
		}
		c.changed.Broadcast()
		c.mu.Unlock()
		return n, err
	}
	if c.pending == nil {
		c.pending = h2PendingBuffers.Get().(*[]byte)
	}
	*c.pending = append(*c.pending, p...)
	if !c.sending {
		c.sending = true
		go c.send()
	}
	c.mu.Unlock()
	return len(p), nil
}

// send is the sender: after the goroutines ready to run have run, it
// writes everything held, until nothing is.
func (c *h2Conn) send() {
	runtime.Gosched()
	c.mu.Lock()
	for c.pending != nil && c.err == nil {
		bp := c.pending
		c.pending = nil
		c.armWrite()
		c.changed.Broadcast()
		c.mu.Unlock()
		_, err := c.Conn.Write(*bp)
		*bp = (*bp)[:0]
		if cap(*bp) <= 2*h2MaxPending {
			h2PendingBuffers.Put(bp)
		}
		c.mu.Lock()
		c.sent(err)
	}
	if c.pending != nil { // not sent: the connection failed
		*c.pending = (*c.pending)[:0]
		h2PendingBuffers.Put(c.pending)
		c.pending = nil
	}
	c.sending = false
	c.changed.Broadcast()
	c.mu.Unlock()
}

// armWrite sets the deadline of the write about to start, unless Close
// has set its own. mu is held.
func (c *h2Conn) armWrite() {
	if c.timeout <= 0 || c.closing {
		return
	}
	now := time.Now().UnixNano()
	by := now + int64(c.timeout)
	if c.writeBy != 0 && by-c.writeBy < int64(c.timeout)/16 && by >= c.writeBy {
		return
	}
	c.writeBy = by
	_ = c.Conn.SetWriteDeadline(time.Unix(0, by))
}

// sent records the result of a write: a failed one closes the
// connection under the serve loop. mu is held.
func (c *h2Conn) sent(err error) {
	if err != nil && c.err == nil {
		c.err = err
		_ = c.Conn.NetConn().Close()
	}
}

// Close sends what is held, within h2CloseFlush, then closes the TLS
// connection (which sends its close_notify alert).
func (c *h2Conn) Close() error {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		if c.sending {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.closeFlush))
		}
	}
	for c.sending {
		c.changed.Wait()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

var _ net.Conn = (*h2Conn)(nil)
