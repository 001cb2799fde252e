package scrub

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// BodyStats is the outcome of a scrubbed body, handed to the callback of
// Body.OnDone.
type BodyStats struct {
	// Scrubbed is the number of replacements in headers, trailers and
	// body.
	Scrubbed int
	// Bytes is the number of body bytes delivered to the reader, after
	// scrubbing.
	Bytes int64
	// Complete reports whether the body was read to its end.
	Complete bool
	// Err is the read error that ended the body; nil when it was read to
	// its end or closed early.
	Err error
}

// Body is a response body returned by Replacer.Response. Close may be
// called while a Read is in progress on another goroutine, as net/http
// allows for response bodies; Read itself is not safe for concurrent use.
type Body struct {
	rep      *Replacer
	src      io.Reader
	w        io.Writer // the upgraded connection of a 101 response
	up       io.Closer // the upstream body, or the WebSocket over it
	decoders []io.Closer
	scrub    interface{ Count() int }
	pooled   *[]byte      // the buffer of a small body read whole
	small    bytes.Reader // reads a small body read whole; then src
	// readMu is held by Read, so that Close does not free a decoder
	// while a Read uses it.
	readMu sync.Mutex

	headers   atomic.Int64 // header and trailer replacements
	bodyCount int          // replacements in a body scrubbed whole
	bytes     atomic.Int64
	trailer   http.Header
	dropped   []string    // trailer names removed by Response, counted there
	trailerOK atomic.Bool // trailer scrubbed at the end of the body

	mu     sync.Mutex
	done   bool
	stats  BodyStats
	onDone func(BodyStats)

	closeOnce sync.Once
	closeErr  error
}

// closedBody is what a Body reads from once closed.
var closedBody io.Reader = errReader{errClosed}

// Read implements io.Reader. An upstream or decoding error is returned as
// is (wrapped), after the scrubbed bytes before it.
func (b *Body) Read(p []byte) (int, error) {
	b.readMu.Lock()
	n, err := b.src.Read(p)
	b.bytes.Add(int64(n))
	if err == io.EOF {
		b.scrubTrailer()
	}
	b.readMu.Unlock()
	switch {
	case err == io.EOF:
		b.finish(nil, true)
	case err != nil:
		b.finish(err, false)
	}
	return n, err
}

// Write passes p to the upgraded connection of a 101 response, client to
// server, unchanged. On any other response it fails.
func (b *Body) Write(p []byte) (int, error) {
	if b.w == nil {
		return 0, errors.New("scrub: write: response body is not an upgraded connection")
	}
	return b.w.Write(p)
}

// Close closes the upstream body, which ends a Read in progress, then the
// decoders, and runs the OnDone callback if the body had not ended yet.
// Later Reads fail.
// Calls after the first return the first one's result.
func (b *Body) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.up.Close()
		b.readMu.Lock()
		for _, d := range b.decoders {
			// A decoder's Close only frees its state.
			_ = d.Close()
		}
		if rd, ok := b.scrub.(*Reader); ok {
			rd.release() // its buffer goes back for the next stream
		}
		b.src = closedBody
		if b.pooled != nil {
			putBodyBuf(b.pooled)
			b.pooled = nil
		}
		b.readMu.Unlock()
		b.finish(nil, false)
	})
	return b.closeErr
}

// Scrubbed returns the number of replacements made so far in headers,
// trailers and body. It is safe to call from any goroutine.
func (b *Body) Scrubbed() int {
	n := int(b.headers.Load()) + b.bodyCount
	if b.scrub != nil {
		n += b.scrub.Count()
	}
	return n
}

// OnDone registers f to run once, with the final figures, when the body
// reaches its end, fails, or is closed, whichever comes first; it runs on
// the goroutine that caused that. If the body is already done, f runs at
// once. A later OnDone before the end replaces f.
func (b *Body) OnDone(f func(BodyStats)) {
	b.mu.Lock()
	if !b.done {
		b.onDone = f
		b.mu.Unlock()
		return
	}
	st := b.stats
	b.mu.Unlock()
	f(st)
}

func (b *Body) finish(err error, complete bool) {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return
	}
	b.done = true
	b.stats = BodyStats{Scrubbed: b.Scrubbed(), Bytes: b.bytes.Load(), Complete: complete, Err: err}
	f, st := b.onDone, b.stats
	b.onDone = nil
	b.mu.Unlock()
	if f != nil {
		f(st)
	}
}

// scrubTrailer scrubs the trailer values, which the transport fills in
// when the upstream body ends. It runs once.
func (b *Body) scrubTrailer() {
	if b.trailer == nil || b.trailerOK.Swap(true) {
		return
	}
	// The transport puts the announced names back when it fills in the
	// values.
	for _, k := range b.dropped {
		delete(b.trailer, k)
	}
	b.headers.Add(int64(b.rep.scrubHeader(b.trailer, nil)))
}

var _ io.ReadWriteCloser = (*Body)(nil)
