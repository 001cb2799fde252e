package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// bufferSize is the size of a connection's read and write buffers: a
// request header and a small body fit in one write.
const bufferSize = 32 << 10

// smallBody is the largest request body of known length that is read
// before the request is written, so that header and body go out in one
// write (and the request can be sent again on a fresh connection). Larger
// bodies, and those of unknown length, stream.
const smallBody = 16 << 10

// max1xx bounds the informational responses skipped before the final one,
// as net/http does.
const max1xx = 5

// conn is an HTTP/1.1 connection to an upstream. Only one round trip uses
// it at a time; between round trips it waits in its Transport's pool.
type conn struct {
	t     *Transport
	addr  string
	tc    *tls.Conn
	gen   uint64
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer     // the idle timer, made when first pooled
	raw   syscall.RawConn // the TCP connection, for alive; nil if not a syscall.Conn

	peek   func(fd uintptr) bool // alive's non-blocking peek, for the round trips
	peekOK bool                  // its result

	limit    int64 // bytes reads may still take: the header bound while a header is read
	nread    int64 // bytes read in this round trip
	nwritten atomic.Int64
	canceled atomic.Bool // the request's context ended and closed the connection
	pooled   atomic.Bool // in the idle pool (set and cleared under t.mu)

	// A streamed body's writer arms the header timeout when it is done,
	// unless the header came first.
	mu         sync.Mutex
	headerDone bool
}

func newConn(t *Transport, addr string, tc *tls.Conn, gen uint64) *conn {
	c := &conn{t: t, addr: addr, tc: tc, gen: gen, limit: math.MaxInt64}
	c.br = bufio.NewReaderSize(c, bufferSize)
	c.bw = bufio.NewWriterSize(writer{c}, bufferSize)
	if sc, ok := tc.NetConn().(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
		c.peek = newPeek(&c.peekOK)
	}
	return c
}

// Read reads from the connection for c.br, within c.limit.
func (c *conn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.tc.Read(p)
	c.limit -= int64(n)
	c.nread += int64(n)
	return n, err
}

// writer writes to the connection for c.bw, counting the bytes written.
type writer struct{ c *conn }

func (w writer) Write(p []byte) (int, error) {
	n, err := w.c.tc.Write(p)
	w.c.nwritten.Add(int64(n))
	return n, err
}

var errHeaderTooLarge = errors.New("response header too large")

// close closes the connection.
func (c *conn) close() { c.tc.Close() }

// cancel is run when the request's context ends: it closes the
// connection under the round trip, which then fails with the context's
// error.
func (c *conn) cancel() {
	c.canceled.Store(true)
	c.tc.NetConn().Close()
}

// roundTrip sends req on c and reads the response header. retry reports
// that c, a pooled connection (reused), turned out dead before the
// upstream could have acted on the request, so that it may be sent again.
func (c *conn) roundTrip(req *http.Request, streaming, reused bool) (*http.Response, bool, error) {
	ctx := req.Context()
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.cancel)
	}
	c.nread = 0
	c.nwritten.Store(0)
	var werr chan error
	if streaming {
		c.headerDone = false
		werr = make(chan error, 1)
		go c.writeStreamed(req, werr)
	} else if err := c.write(req); err != nil {
		stop()
		c.close()
		if c.canceled.Load() {
			return nil, false, c.ctxErr(ctx)
		}
		return nil, reused && c.nwritten.Load() == 0, err
	}
	resp, err := c.readResponse(req, streaming)
	if err != nil {
		c.close() // ends a streaming writer too
		if werr != nil {
			var be *bodyError
			if e := <-werr; errors.As(e, &be) {
				err = be.err
			}
		}
		stop()
		if c.canceled.Load() {
			return nil, false, c.ctxErr(ctx)
		}
		retry := reused && !streaming && c.nread == 0 && replayable(req) && !errors.Is(err, os.ErrDeadlineExceeded)
		return nil, retry, err
	}
	b := &body{c: c, rc: resp.Body, ctx: ctx, stop: stop, werr: werr, keep: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.release()
		return resp, false, nil
	}
	if resp.ContentLength > 0 && len(resp.TransferEncoding) == 0 {
		b.rc = &lengthBody{c: c, left: resp.ContentLength}
	}
	resp.Body = b
	return resp, false, nil
}

// lengthBody reads a body of known length in place of http.ReadResponse's.
// Once the bytes that came with the header are used up, it reads the TLS
// connection straight into the caller's buffer, as net/http's smaller
// read buffer lets it: through c.br every byte of a large body would be
// copied once more. The read that can reach the body's end goes through
// c.br, which then holds the rest of that TLS record, so that bytes after
// the body are seen there (see body.release) and never taken for the next
// response.
type lengthBody struct {
	c    *conn
	left int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	var n int
	var err error
	if b.c.br.Buffered() == 0 && b.left > int64(len(p)) {
		n, err = b.c.Read(p)
	} else {
		n, err = b.c.br.Read(p[:min(int64(len(p)), b.left)])
	}
	b.left -= int64(n)
	switch {
	case b.left == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// write writes req and flushes it in one write.
func (c *conn) write(req *http.Request) error {
	if err := req.Write(c.bw); err != nil {
		c.bw.Reset(writer{c})
		return fmt.Errorf("transport: write request to %s: %w", c.addr, err)
	}
	if err := c.bw.Flush(); err != nil {
		c.bw.Reset(writer{c})
		return fmt.Errorf("transport: write request to %s: %w", c.addr, err)
	}
	return nil
}

// bodyError marks an error reading the request body (not the upstream's).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }

// recordingBody keeps the first error reading a request body, which
// Request.Write reports in a type of its own that hides it.
type recordingBody struct {
	io.ReadCloser
	err error
}

func (r *recordingBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// writeStreamed writes req, whose body streams, and reports the result on
// done. A broken request body closes the connection, which ends the wait
// for the response; success arms the header timeout.
func (c *conn) writeStreamed(req *http.Request, done chan<- error) {
	rb := &recordingBody{ReadCloser: req.Body}
	r := *req
	r.Body = rb
	err := c.write(&r)
	if err != nil && rb.err != nil {
		// The upstream waits for the rest of the body: end the wait.
		// (A failure to write is the connection's, and the reader sees
		// it too, after any response the upstream sent first.)
		c.tc.NetConn().Close()
		err = &bodyError{rb.err}
	} else if d := c.t.cfg.ResponseHeaderTimeout; err == nil && d > 0 {
		c.mu.Lock()
		if !c.headerDone {
			c.tc.SetReadDeadline(time.Now().Add(d))
		}
		c.mu.Unlock()
	}
	done <- err
}

// readResponse reads the response header, skipping informational
// responses, within the header timeout and MaxResponseHeaderBytes.
func (c *conn) readResponse(req *http.Request, streaming bool) (*http.Response, error) {
	d := c.t.cfg.ResponseHeaderTimeout
	if d > 0 && !streaming {
		c.tc.SetReadDeadline(time.Now().Add(d))
	}
	var resp *http.Response
	for n := 0; ; n++ {
		c.limit = c.t.cfg.MaxResponseHeaderBytes
		var err error
		resp, err = http.ReadResponse(c.br, req)
		switch {
		case err == nil:
		case c.limit <= 0 || errors.Is(err, errHeaderTooLarge):
			return nil, fmt.Errorf("transport: %s: response header exceeded %d bytes", c.addr, c.t.cfg.MaxResponseHeaderBytes)
		case errors.Is(err, os.ErrDeadlineExceeded) && !c.canceled.Load():
			return nil, &timeoutError{fmt.Sprintf("transport: %s: timeout awaiting response headers", c.addr)}
		default:
			return nil, fmt.Errorf("transport: read response from %s: %w", c.addr, err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("transport: %s: unexpected 101 Switching Protocols", c.addr)
		}
		if resp.StatusCode >= 200 || resp.StatusCode < 100 {
			break
		}
		if n >= max1xx {
			return nil, fmt.Errorf("transport: %s: too many 1xx informational responses", c.addr)
		}
	}
	c.limit = math.MaxInt64
	if d > 0 {
		c.mu.Lock()
		c.headerDone = true
		c.tc.SetReadDeadline(time.Time{})
		c.mu.Unlock()
	}
	return resp, nil
}

// ctxErr is the error of a round trip whose context ended.
func (c *conn) ctxErr(ctx context.Context) error {
	return fmt.Errorf("transport: request to %s: %w", c.addr, ctx.Err())
}

// timeoutError is a timeout, as a net.Error.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }

// prepareBody returns req to send: as it is, or with a small body read
// whole (then replayable through GetBody). streaming reports a body that
// is written as it is read.
func prepareBody(req *http.Request) (out *http.Request, streaming bool, err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, false, nil
	}
	if req.ContentLength <= 0 || req.ContentLength > smallBody || req.Trailer != nil {
		// (A trailer's values are known at the end of the body.)
		return req, true, nil
	}
	buf := make([]byte, req.ContentLength)
	_, err = io.ReadFull(req.Body, buf)
	req.Body.Close()
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, false, fmt.Errorf("transport: request body shorter than its Content-Length %d", req.ContentLength)
		}
		return nil, false, err
	}
	out = new(http.Request)
	*out = *req
	out.Body = io.NopCloser(bytes.NewReader(buf))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return out, false, nil
}
