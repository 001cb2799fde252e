package pgfront

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// wire is one direction of a session: a buffered writer whose messages go
// out when a message that ends an exchange arrives (ReadyForQuery, Sync,
// ...), when the buffer fills (so large results stream through in
// fixed-size pieces, never held whole), or at most flushDelay after the
// first message that is still buffered, so that a client that sends Flush
// and waits, or a slow COPY, is never starved.
type wire struct {
	mu    sync.Mutex
	conn  net.Conn
	w     *bufio.Writer
	buf   []byte
	timer *time.Timer
	armed bool
	err   error
}

// flushDelay bounds how long a buffered message waits.
const flushDelay = time.Millisecond

// wireBuffer is the size of each direction's buffer.
const wireBuffer = 32 << 10

type encoder interface {
	Encode(dst []byte) ([]byte, error)
}

func newWire(c net.Conn) *wire {
	x := &wire{conn: c, w: bufio.NewWriterSize(c, wireBuffer)}
	x.timer = time.AfterFunc(time.Hour, x.deferredFlush)
	x.timer.Stop()
	return x
}

// send writes msg, flushing now when flush is set.
func (x *wire) send(msg encoder, flush bool) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return x.err
	}
	var err error
	if x.buf, err = msg.Encode(x.buf[:0]); err != nil {
		return err
	}
	if _, err := x.w.Write(x.buf); err != nil {
		x.err = err
		return err
	}
	if flush {
		x.armed = false
		x.err = x.w.Flush()
		return x.err
	}
	if !x.armed && x.w.Buffered() > 0 {
		x.armed = true
		x.timer.Reset(flushDelay)
	}
	return nil
}

func (x *wire) flush() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err == nil {
		x.armed = false
		x.err = x.w.Flush()
	}
	return x.err
}

func (x *wire) deferredFlush() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.armed && x.err == nil {
		x.armed = false
		x.err = x.w.Flush()
	}
}

func (x *wire) stop() { x.timer.Stop() }
