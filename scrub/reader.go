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
// src through unchanged. Each Reader allocates its buffers once, on its
// first Read: one read buffer of 32 KiB plus the longest pattern (one per
// chained Replacer), and an output buffer only when the caller reads in
// pieces too small to scrub into directly, or when the Replacer is a chain.
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
			r.out = make([]byte, 0, cap(r.pl.bufs[len(r.pl.bufs)-1]))
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

// pipeline scrubs a stream through a Replacer's stages; each stage keeps in
// its buffer the bytes it holds back, followed by new input.
type pipeline struct {
	stages []*stage
	bufs   [][]byte
	// growNum/growDen is the product of the stages' growth bounds.
	growNum, growDen int
}

func newPipeline(stages []*stage) pipeline {
	p := pipeline{stages: stages, bufs: make([][]byte, len(stages)), growNum: 1, growDen: 1}
	for _, s := range stages {
		p.growNum *= s.growNum
		p.growDen *= s.growDen
	}
	return p
}

// space returns the free room after the first stage's input, at least
// readSize bytes, for the caller to read new input into.
func (p *pipeline) space() []byte {
	if p.bufs[0] == nil && len(p.stages) == 1 {
		if b, ok := p.stages[0].readBufs.Get().(*[]byte); ok {
			p.bufs[0] = (*b)[:0]
		}
	}
	if p.bufs[0] == nil && len(p.stages) > 1 {
		if set, ok := p.stages[0].setBufs.Get().(*[][]byte); ok && len(*set) == len(p.stages) {
			p.bufs = *set
		}
	}
	if p.bufs[0] == nil {
		// Each stage's output is at most its input plus what the
		// stage before held back, unless a replacement is longer than
		// what it replaces; then append grows the buffer once. The
		// buffers are of one size, since flush may swap them.
		n := readSize
		for _, s := range p.stages {
			n += s.maxLen
		}
		for i := range p.stages {
			p.bufs[i] = make([]byte, 0, n)
		}
	}
	b := p.bufs[0]
	return b[len(b):cap(b)]
}

// commit appends the first n bytes of space to the input.
func (p *pipeline) commit(n int) { p.bufs[0] = p.bufs[0][:len(p.bufs[0])+n] }

// held returns the number of bytes the stages hold back.
func (p *pipeline) held() int {
	n := 0
	for _, b := range p.bufs {
		n += len(b)
	}
	return n
}

// flush scrubs the input through every stage, appends the output to dst
// and returns it with the number of replacements. Unless final, each stage
// keeps the bytes that could still begin one of its patterns.
func (p *pipeline) flush(dst []byte, final bool) ([]byte, int) {
	total := 0
	for i, s := range p.stages {
		last := i == len(p.stages)-1
		if !last && s.m != nil && len(p.bufs[i+1]) == 0 && !s.has(p.bufs[i]) {
			// The stage leaves its input as it is: hand the
			// buffer on, keeping only what it holds back.
			b := p.bufs[i]
			used := len(b)
			if !final {
				used = s.m.hold(b)
			}
			next := p.bufs[i+1]
			p.bufs[i+1] = b[:used]
			p.bufs[i] = append(next[:0], b[used:]...)
			continue
		}
		out := dst
		if !last {
			out = p.bufs[i+1]
		}
		out, used, n := s.run(out, p.bufs[i], final)
		total += n
		p.bufs[i] = p.bufs[i][:copy(p.bufs[i], p.bufs[i][used:])]
		if last {
			dst = out
		} else {
			p.bufs[i+1] = out
		}
	}
	return dst, total
}

// release gives a single stage's read buffer back for another Reader; the
// pipeline must not be used afterwards.
func (p *pipeline) release() {
	if p.bufs[0] == nil {
		return
	}
	if len(p.stages) > 1 {
		// A pipeline that begins with the same stage may have other
		// stages after it, so space checks the count; the sizes follow
		// from the stages, which a Chain shares.
		set := p.bufs
		for i := range set {
			set[i] = set[i][:0]
		}
		p.bufs = make([][]byte, len(p.stages))
		p.stages[0].setBufs.Put(&set)
		return
	}
	b := p.bufs[0][:0]
	p.bufs[0] = nil
	p.stages[0].readBufs.Put(&b)
}

// drop discards the held-back bytes of every stage.
func (p *pipeline) drop() {
	for i := range p.bufs {
		p.bufs[i] = p.bufs[i][:0]
	}
}

var _ io.ReadCloser = (*Reader)(nil)
