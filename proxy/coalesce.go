package proxy

import (
	"net"
	"sync"
)

// Inside a tunnel every write is a TLS record, and without holding some
// back every record would be a syscall of its own: a response's header and
// its body, a chunk-size line, the CRLF after a chunk.
const (
	// tinyWrite is the largest write held back between exchanges (a
	// session ticket, a TLS alert), up to tinyPending bytes in all.
	tinyWrite   = 64
	tinyPending = 4 * tinyWrite
	// corkWrite is the largest write held back while a response is being
	// written, up to corkPending bytes in all: a small response's header
	// and body leave in one writev, a streamed body's chunk framing with
	// the chunk after it.
	corkWrite   = 4 << 10
	corkPending = 16 << 10
)

// pendingPool holds the buffers of writes held back, so that a connection
// holds one only while it has something pending: an idle tunnel keeps none.
var pendingPool = sync.Pool{New: func() any { b := make([]byte, 0, corkPending); return &b }}

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

// releasePending returns the buffer of held writes to the pool. wmu is
// held.
func (c *clientConn) releasePending() {
	if c.pending != nil {
		*c.pending = (*c.pending)[:0]
		pendingPool.Put(c.pending)
		c.pending = nil
	}
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
		if c.pending == nil {
			c.pending = pendingPool.Get().(*[]byte)
		}
		*c.pending = append(*c.pending, p...)
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
