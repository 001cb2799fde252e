package scrub

import (
	"errors"
	"io"
	"sync/atomic"
)

// readSize is the most a Reader asks of its source in one Read.
const readSize = 32 << 10

// minDirect is the smallest read worth scrubbing straight into the
// caller's buffer; below it the Reader reads a full readSize into its own.
const minDirect = 512

// Reader scrubs the stream it reads from. It holds back only the bytes that
// could still begin a pattern and returns everything else from the Read
// call in which it arrived, so a server-sent event reaches the caller as
// soon as the source yields it. A Reader is not safe for concurrent use,
// except for Count.
type Reader struct {
	src io.Reader
	pl  pipeline // no stages: pass src through
	// out[off:] is scrubbed output not yet returned.
	out   []byte
	off   int
	err   error // the source's error, returned once out is drained
	count atomic.Int64

	closed bool
}

// NewReader returns a Reader that scrubs src. With no patterns it passes
// src through unchanged. Each Reader takes its buffers once, on its first
// Read, from those that closed Readers gave back: one input buffer of
// 32 KiB plus what the stages may hold back, a scratch buffer of that size
// for each of at most two stages that have something to change, and an
// output buffer only when the caller reads in pieces too small to scrub
// into directly.
func (r *Replacer) NewReader(src io.Reader) *Reader {
	rd := &Reader{src: src}
	if r != nil && len(r.stages) > 0 {
		rd.pl = newPipeline(r.stages)
	}
	return rd
}

// Read implements io.Reader. At the end of the source the held-back bytes
// are scrubbed and returned, then io.EOF. A source error other than io.EOF
// is returned after the scrubbed bytes before it; the held-back bytes are
// then discarded, since they may be the first part of a secret and the
// stream is broken anyway.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pl.stages == nil || r.closed {
		if r.closed {
			return 0, r.err
		}
		return r.src.Read(p)
	}
	for r.off == len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if n := r.fill(p); n > 0 {
			return n, nil
		}
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// fill reads from the source once and scrubs what it can. When the output
// is sure to fit p it goes there and fill returns its length; otherwise it
// goes to r.out and fill returns 0.
func (r *Reader) fill(p []byte) int {
	space := r.pl.space()
	var dst []byte
	direct := false
	// Each stage's output is at most its input, the bytes it held and
	// what the stage before it wrote, times its growth.
	if budget := len(p)*r.pl.growDen/r.pl.growNum - r.pl.held(); budget >= minDirect {
		space = space[:min(len(space), budget)]
		dst, direct = p[:0:len(p)], true
	}
	if !direct {
		if r.out == nil {
			r.out = make([]byte, 0, r.pl.bufSize())
		}
		dst = r.out[:0]
	}
	n, err := r.src.Read(space)
	r.pl.commit(n)
	dst, c := r.pl.flush(dst, err == io.EOF)
	if err != nil {
		if err != io.EOF {
			r.pl.drop()
		}
		r.err = err
	}
	r.count.Add(int64(c))
	if direct {
		return len(dst)
	}
	r.out, r.off = dst, 0
	return 0
}

// Count returns the number of replacements made so far. It is safe to call
// from any goroutine, also after EOF or Close.
func (r *Reader) Count() int { return int(r.count.Load()) }

// Close closes the source if it is an io.Closer, and gives the Reader's
// buffer back for reuse; later Reads fail. Calls after the first do nothing
// and return nil. Close must not run while a Read is in progress.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.release()
	if c, ok := r.src.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// release ends the Reader without closing its source: its buffer goes back
// for reuse and later Reads fail.
func (r *Reader) release() {
	r.closed = true
	r.out, r.off = nil, 0
	r.err = errClosed
	if r.pl.stages != nil {
		r.pl.release()
	}
}

// errClosed is what a Reader's Read returns after Close.
var errClosed = errors.New("scrub: read after close")

var _ io.ReadCloser = (*Reader)(nil)
