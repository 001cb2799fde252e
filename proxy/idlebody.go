package proxy

import (
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// errUpstreamIdle ends an upstream response body that sent nothing for the
// idle timeout.
var errUpstreamIdle = errors.New("the upstream sent nothing for the idle timeout")

// idleBody is an upstream response body that is closed when no read has
// returned data for the idle timeout. The transport bounds the wait for a
// response's header, but not for its body: without this, an upstream that
// stalls mid-body would hold the request, its upstream connection and the
// agent's connection for as long as it likes, and so would an agent that
// left a tunnel while the upstream is silent (keyhole notices it only when
// it next writes to it). The reader then gets errUpstreamIdle, never a
// clean end.
//
// In a tunnel, conn is told before and after each read, which may wait,
// so that it sends the writes it holds back (see beforeUpstreamRead); its
// error (the agent is gone) ends the body. A streamed body (one without a
// length) tells it every read was small, so that nothing it sent waits. The tunnel's exchanges come one
// at a time, so one timer of conn's watches each body in turn (see
// watchBody); a body read for plain HTTP, with conn nil, has a timer of
// its own.
type idleBody struct {
	io.ReadCloser
	conn     *clientConn
	streamed bool
	lastRead int  // 0 for a streamed body
	filled   bool // the last read filled its buffer
	timeout  time.Duration
	last     atomic.Int64 // when a read last returned data, in Unix nanoseconds
	expired  atomic.Bool
	timer    *time.Timer // conn == nil only
}

func newIdleBody(rc io.ReadCloser, timeout time.Duration, conn *clientConn, streamed bool) *idleBody {
	b := &idleBody{ReadCloser: rc, timeout: timeout, conn: conn, streamed: streamed}
	b.last.Store(time.Now().UnixNano())
	if conn != nil {
		conn.watchBody(b)
	} else {
		b.timer = time.AfterFunc(timeout, b.check)
	}
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	if err := b.conn.beforeUpstreamRead(b.lastRead); err != nil {
		return 0, &agentGoneError{err}
	}
	n, err := b.ReadCloser.Read(p)
	b.conn.afterUpstreamRead()
	if !b.streamed {
		// A short read right after one that filled its buffer returned
		// what the source had left buffered, without waiting: as bulk as
		// the read before it (a scrubber asking for what its buffer has
		// room for leaves such remainders after most records).
		b.lastRead = n
		if b.filled {
			b.lastRead = max(n, bulkRead)
		}
		b.filled = n > 0 && n == len(p)
	}
	if n > 0 {
		b.last.Store(time.Now().UnixNano())
	}
	if err != nil && b.expired.Load() {
		err = errUpstreamIdle
	}
	return n, err
}

// check closes the body if it has been idle for the timeout, and otherwise
// looks again when it could be.
func (b *idleBody) check() {
	idle := time.Duration(time.Now().UnixNano() - b.last.Load())
	if idle < b.timeout {
		if b.conn != nil {
			b.conn.rewatchBody(b, b.timeout-idle)
		} else {
			b.timer.Reset(b.timeout - idle)
		}
		return
	}
	b.expired.Store(true)
	_ = b.ReadCloser.Close()
}

// agentGoneError is a failure to write to the agent, met while reading the
// upstream body: the agent left before the end of the response.
type agentGoneError struct{ err error }

func (e *agentGoneError) Error() string { return "writing to the agent: " + e.err.Error() }
func (e *agentGoneError) Unwrap() error { return e.err }

// Close stops the watch and closes the body.
func (b *idleBody) Close() error {
	if b.conn != nil {
		b.conn.unwatchBody(b)
	} else {
		b.timer.Stop()
	}
	return b.ReadCloser.Close()
}

// watchBody starts watching b, the upstream body of the tunnel's current
// exchange, for its idle timeout, with the tunnel's body timer.
func (c *clientConn) watchBody(b *idleBody) {
	c.watched.Store(b)
	if c.bodyTimer == nil {
		c.bodyTimer = time.AfterFunc(b.timeout, c.checkBody)
		return
	}
	c.bodyTimer.Reset(b.timeout)
}

// rewatchBody looks at b again after d, if it is still the body watched.
func (c *clientConn) rewatchBody(b *idleBody, d time.Duration) {
	if c.watched.Load() == b {
		c.bodyTimer.Reset(d)
	}
}

// unwatchBody stops watching b.
func (c *clientConn) unwatchBody(b *idleBody) {
	if c.watched.CompareAndSwap(b, nil) {
		c.bodyTimer.Stop()
	}
}

// checkBody runs when the body timer fires: the body watched then, if any,
// is checked (the timer may fire just as one body ends and the next
// begins; each is judged by its own last read).
func (c *clientConn) checkBody() {
	if b := c.watched.Load(); b != nil {
		b.check()
	}
}
