package proxy

import (
	"net"
	"sync"
	"time"
)

// Inside a tunnel every write is a TLS record, and without holding some
// back every record would be a syscall of its own: a response's header and
// its body, a chunk-size line, the CRLF after a chunk, each record of a
// large body.
const (
	// tinyWrite is the largest write held back between exchanges (a
	// session ticket, a TLS alert), up to tinyPending bytes in all.
	tinyWrite   = 64
	tinyPending = 4 * tinyWrite
	// corkWrite is the largest write held back while a response is being
	// written, up to corkPending bytes in all: a small response's header
	// and body leave in one writev, a large body in writes of up to
	// corkPending. corkWrite holds a full TLS record (16 KiB of data
	// plus its header and tag).
	corkWrite   = 16<<10 + 64
	corkPending = 64 << 10
	// bulkRead is the smallest read of an upstream body after which the
	// next read is expected not to wait: the upstream is sending a body
	// as fast as it can, not a stream of events.
	bulkRead = 8 << 10
	// bulkFlushDelay is how long a read of a bulk body may wait before
	// what is held back is sent anyway.
	bulkFlushDelay = 2 * time.Millisecond
)

// smallPending and largePending hold the buffers of writes held back, so
// that a connection holds one only while it has something pending (an idle
// tunnel keeps none), and a small one unless it relays a large body.
var (
	smallPending = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
	largePending = sync.Pool{New: func() any { b := make([]byte, 0, corkPending); return &b }}
)

// coalesceWrites starts holding back small writes; off stops it (an
// upgraded connection relays frames from two goroutines, and a frame held
// back could wait on a read that is already blocked).
func (c *clientConn) coalesceWrites(on bool) {
	if c == nil {
		return
	}
	if !on {
		_ = c.flushPending()
	}
	c.coalesce.Store(on)
}

// flushPending sends the writes held back. Its error, if any, is also the
// error of every later write: a peer that went away is noticed.
func (c *clientConn) flushPending() error {
	if c == nil || !c.coalesce.Load() {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending != nil && c.werr == nil {
		_, c.werr = c.Conn.Write(*c.pending)
	}
	c.releasePending()
	return c.werr
}

// releasePending returns the buffer of held writes to its pool. wmu is
// held.
func (c *clientConn) releasePending() {
	if c.pending == nil {
		return
	}
	*c.pending = (*c.pending)[:0]
	if cap(*c.pending) == corkPending {
		largePending.Put(c.pending)
	} else {
		smallPending.Put(c.pending)
	}
	c.pending = nil
}

// coalescedWrite holds a small write back, or writes p after what is held
// back, in one writev.
func (c *clientConn) coalescedWrite(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	small, limit := tinyWrite, tinyPending
	if c.inExchange.Load() {
		small, limit = corkWrite, corkPending
	}
	held := 0
	if c.pending != nil {
		held = len(*c.pending)
	}
	if len(p) <= small && held+len(p) <= limit {
		c.hold(p)
		return len(p), nil
	}
	if held == 0 {
		return c.Conn.Write(p)
	}
	bufs := net.Buffers{*c.pending, p}
	_, err := bufs.WriteTo(c.Conn) // one writev
	c.releasePending()
	if err != nil {
		c.werr = err
		return 0, err
	}
	return len(p), nil
}

// hold appends p to the writes held back, moving them to a large buffer
// when the small one is full. wmu is held.
func (c *clientConn) hold(p []byte) {
	if c.pending == nil {
		c.pending = smallPending.Get().(*[]byte)
	}
	if len(*c.pending)+len(p) > cap(*c.pending) {
		large := largePending.Get().(*[]byte)
		*large = append(*large, *c.pending...)
		c.releasePending()
		c.pending = large
	}
	*c.pending = append(*c.pending, p...)
}

// beforeUpstreamRead runs before each read of an upstream response body
// relayed through the tunnel, which may wait. After a small read (the
// body's start; every read of a streamed body counts as small) what is
// held back is sent at once, so that the agent never waits on it. After a bulk read the next one is
// likely to return at once, and held writes add up to fewer, larger
// syscalls; they are sent anyway if the read waits for bulkFlushDelay. It
// returns the error of an earlier flush: the agent has gone.
func (c *clientConn) beforeUpstreamRead(lastRead int) error {
	if c == nil || !c.coalesce.Load() {
		return nil
	}
	if lastRead < bulkRead {
		return c.flushPending()
	}
	c.wmu.Lock()
	held, err := c.pending != nil, c.werr
	c.wmu.Unlock()
	if held && err == nil {
		if c.flushTimer == nil {
			c.flushTimer = time.AfterFunc(bulkFlushDelay, func() { _ = c.flushPending() })
		} else {
			c.flushTimer.Reset(bulkFlushDelay)
		}
		c.timerArmed = true
	}
	return err
}

// afterUpstreamRead stops the flush that beforeUpstreamRead scheduled.
func (c *clientConn) afterUpstreamRead() {
	if c != nil && c.timerArmed {
		c.flushTimer.Stop()
		c.timerArmed = false
	}
}

// SetWriteDeadline sends what is held back when the deadline changes:
// under the new deadline when it is in the future (or none), under the
// old one when it has passed. tls.Conn.Close sets a deadline 5 s ahead,
// sends its close_notify alert, then sets one in the past: writes still
// held then (the end of a response, the alert itself) would be lost, and
// the client would see a response cut short (curl exit 18, Go's
// "unexpected EOF reading trailer").
func (c *clientConn) SetWriteDeadline(t time.Time) error {
	return c.flushAround(t, c.Conn.SetWriteDeadline)
}

// SetDeadline sends what is held back when the deadlines change, as
// SetWriteDeadline does.
func (c *clientConn) SetDeadline(t time.Time) error {
	return c.flushAround(t, c.Conn.SetDeadline)
}

func (c *clientConn) flushAround(t time.Time, set func(time.Time) error) error {
	if t.IsZero() || t.After(time.Now()) {
		err := set(t)
		_ = c.flushPending()
		return err
	}
	_ = c.flushPending()
	return set(t)
}
