package proxy

import "net"

// tinyWrite is the largest write held back to be sent with the next one: a
// TLS record around a chunk-size line or a CRLF.
const tinyWrite = 64

// coalesceWrites starts holding back tiny writes; off stops it (an
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
	if len(c.pending) > 0 && c.werr == nil {
		_, c.werr = c.Conn.Write(c.pending)
		c.pending = c.pending[:0]
	}
	return c.werr
}

// coalescedWrite holds a tiny write back, or writes p after what is held
// back, in one writev.
func (c *clientConn) coalescedWrite(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if len(p) <= tinyWrite && len(c.pending)+len(p) <= 4*tinyWrite {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	if len(c.pending) == 0 {
		return c.Conn.Write(p)
	}
	bufs := net.Buffers{c.pending, p}
	_, err := bufs.WriteTo(c.Conn) // one writev
	c.pending = c.pending[:0]
	if err != nil {
		c.werr = err
		return 0, err
	}
	return len(p), nil
}
