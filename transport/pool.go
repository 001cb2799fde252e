package transport

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// idleConn takes the most recently used idle HTTP/1.1 connection to addr
// from the pool, or returns nil. With check it is one still alive (see
// alive); without, the caller retries the request on a fresh connection
// when the one taken turns out dead (see conn.roundTrip's retry).
func (t *Transport) idleConn(addr string, check bool) *conn {
	for {
		c, expired := t.popIdle(addr)
		if expired {
			c.close()
			continue
		}
		if c == nil || !check || c.alive() {
			return c
		}
		c.close()
	}
}

// popIdle takes the most recently used idle connection to addr from the
// pool; expired reports one whose idle timer fired (the timer's func no
// longer finds it, so the caller closes it).
func (t *Transport) popIdle(addr string) (c *conn, expired bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[addr]
	if len(l) == 0 {
		return nil, false
	}
	c = l[len(l)-1]
	l[len(l)-1] = nil
	if len(l) == 1 {
		delete(t.idle, addr)
	} else {
		t.idle[addr] = l[:len(l)-1]
	}
	t.nidle--
	c.pooled.Store(false)
	return c, !c.timer.Stop()
}

// put returns c to the pool, or closes it when the pool is full or c was
// dialed before the last CloseIdleConnections.
func (t *Transport) put(c *conn) {
	t.mu.Lock()
	l := t.idle[c.addr]
	if c.gen != t.gen || len(l) >= t.cfg.MaxIdleConnsPerHost || t.nidle >= t.cfg.MaxIdleConns {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle[c.addr] = append(l, c)
	t.nidle++
	c.pooled.Store(true)
	if !t.sweeping {
		t.sweeping = true
		go t.sweep()
	}
	if c.timer == nil {
		c.timer = time.AfterFunc(t.cfg.IdleConnTimeout, c.expire)
	} else {
		c.timer.Reset(t.cfg.IdleConnTimeout)
	}
	t.mu.Unlock()
}

// expire closes c, idle for IdleConnTimeout, unless a round trip took it
// from the pool first.
func (c *conn) expire() {
	if c.t.unpool(c) {
		c.close()
	}
}

// unpool removes c from the idle pool, reporting whether it was there.
func (t *Transport) unpool(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.idle[c.addr]
	for i, p := range l {
		if p != c {
			continue
		}
		l = append(l[:i], l[i+1:]...)
		t.nidle--
		c.pooled.Store(false)
		if len(l) == 0 {
			delete(t.idle, c.addr)
		} else {
			t.idle[c.addr] = l
		}
		c.timer.Stop()
		return true
	}
	return false
}

// sweepInterval is how often idle connections are checked for an
// upstream's close.
const sweepInterval = time.Second

// sweep closes, every sweepInterval while any connection idles, the idle
// connections the upstream closed (net/http's transport notices at once,
// from the read each connection keeps pending; here nothing reads an idle
// connection). It ends when the pool is empty.
func (t *Transport) sweep() {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	var idle []*conn
	var ok bool
	peek := newPeek(&ok)
	for range tick.C {
		idle = idle[:0]
		t.mu.Lock()
		if t.nidle == 0 {
			t.sweeping = false
			t.mu.Unlock()
			return
		}
		for _, l := range t.idle {
			idle = append(idle, l...)
		}
		t.mu.Unlock()
		for _, c := range idle {
			// A connection taken since is in use: the probe would wait
			// for its reader, so it is skipped (and were it taken just
			// after the check, unpool would no longer find it).
			if c.pooled.Load() && !c.probe(peek, &ok) && t.unpool(c) {
				c.close()
			}
		}
		clear(idle)
	}
}

// h2Conn returns a pooled HTTP/2 connection to addr with a stream
// reserved for one request, or nil.
func (t *Transport) h2Conn(addr string) *h2conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, h := range t.h2c[addr] {
		if h.cc.ReserveNewRequest() {
			return h
		}
	}
	return nil
}

// putH2 pools a new HTTP/2 connection, dropping from the pool those that
// closed or take no new requests. A connection beyond the bound, or from
// before the last CloseIdleConnections, serves the request it was dialed
// for and is not reused.
func (t *Transport) putH2(addr string, h *h2conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a, l := range t.h2c {
		keep := l[:0]
		for _, p := range l {
			if st := p.cc.State(); !st.Closed && !st.Closing {
				keep = append(keep, p)
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(t.h2c, a)
		} else {
			t.h2c[a] = keep
		}
	}
	if h.gen != t.gen || len(t.h2c[addr]) >= t.cfg.MaxIdleConnsPerHost {
		h.cc.SetDoNotReuse()
		return
	}
	t.h2c[addr] = append(t.h2c[addr], h)
}

// errBodyClosed is a read of a response body after its Close.
var errBodyClosed = errors.New("transport: read on closed response body")

// body is an HTTP/1.1 response body. Read to its end, it returns its
// connection to the pool (when the response allowed reuse); closed or
// broken before, it closes the connection.
type body struct {
	c    *conn
	rc   io.Reader // http.ReadResponse's body, or a lengthBody
	ctx  context.Context
	stop func() bool // stops the context's watch; false if it fired
	werr chan error  // a streamed request body's writer; nil if none
	keep bool        // the response allows the connection's reuse

	mu    sync.Mutex
	ended bool  // at EOF, closed or broken
	err   error // what later reads return
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	ended, err := b.ended, b.err
	b.mu.Unlock()
	if ended {
		return 0, err
	}
	n, err := b.rc.Read(p)
	if err == nil {
		return n, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended { // closed while the read was under way
		return n, b.err
	}
	b.ended = true
	if err == io.EOF {
		b.err = io.EOF
		b.release()
		return n, io.EOF
	}
	b.c.close()
	if !b.stop() || b.c.canceled.Load() {
		err = b.c.ctxErr(b.ctx)
	}
	b.err = err
	return n, err
}

// Close closes the body; before its end, that closes the connection.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ended {
		b.ended, b.err = true, errBodyClosed
		b.c.close()
		b.stop()
	}
	return nil
}

// release ends the round trip at the end of the body: the connection goes
// back to the pool if the response allows, the context did not end, no
// stray bytes follow the response and a streamed request body was written
// whole.
func (b *body) release() {
	c := b.c
	stray := c.br.Buffered() > 0
	if b.stop() && b.keep && !stray && b.written() {
		c.t.put(c)
		return
	}
	c.close()
	if stray && c.t.cfg.OnUnsolicited != nil {
		c.t.cfg.OnUnsolicited(c.addr)
	}
}

// written reports whether the request body was written whole: at once if
// it was written before the response was read, else within a short wait
// for its writer (the upstream has answered, so it has read what it
// wanted).
func (b *body) written() bool {
	if b.werr == nil {
		return true
	}
	select {
	case err := <-b.werr:
		return err == nil
	default:
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case err := <-b.werr:
		return err == nil
	case <-t.C:
		return false
	}
}
