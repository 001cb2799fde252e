package scrub

import "slices"

// pipeline scrubs a stream through a Replacer's stages. Stage i reads the
// bytes it held back at the last flush followed by what stage i-1 passed
// on, and holds back, unless final, the bytes that more input could still
// turn into one of its matches.
//
// All the held-back bytes live at the start of one input buffer, the last
// stage's first and stage 0's last, and new input is read in after them:
//
//	in = held[n-1] ... held[1] held[0] | new input
//
// so stage 0 reads the end of in, and a stage that leaves its input as it
// is (a decoding stage with nothing to do) passes on a prefix of it, which
// with the next stage's held bytes right before it is that stage's input:
// each stage's input is a slice of in, and a body without escapes or
// wrapped base64 is not copied between stages. One vector pass over in
// (see presence) tells every decoding stage at once whether it has
// anything to do, and, where the last stage is the literal search, copies
// in to the output as it goes, so that the literal search writes only
// from its first match on. A stage that has work writes to a scratch
// buffer, with the held bytes of the stages after it in front.
type pipeline struct {
	stages []*stage
	b      *pipeBufs // nil before the first space and after release
	// growNum/growDen is the product of the stages' growth bounds.
	growNum, growDen int
	// copies reports that flush may copy in to dst in the presence pass:
	// the decoding stages come first and the literal search last.
	copies bool
}

// pipeBufs are the buffers of a pipeline, recycled through the first
// stage's pool.
type pipeBufs struct {
	in []byte
	// held[i] is the length of stage i's held bytes in in; tailLen[i]
	// the length of what it holds back at the end of a flush, in tails.
	held, tailLen []int
	tails         []byte
	scratch       [2][]byte
}

func newPipeline(stages []*stage) pipeline {
	p := pipeline{stages: stages, growNum: 1, growDen: 1}
	for _, s := range stages {
		p.growNum *= s.growNum
		p.growDen *= s.growDen
	}
	n := len(stages)
	p.copies = n > 1 && haveSpecialMasks && stages[n-1].m == nil && onlyMatchers(stages[:n-1])
	return p
}

// bufSize is the capacity of the input buffer: a read of readSize bytes
// and what every stage may hold back. A stage's output is at most its
// input, unless a replacement is longer than what it replaces; then
// append grows the buffer.
func (p *pipeline) bufSize() int {
	n := readSize
	for _, s := range p.stages {
		n += s.maxLen
	}
	return n
}

// space returns the free room after the input, at least readSize bytes,
// for the caller to read new input into.
func (p *pipeline) space() []byte {
	if p.b == nil {
		p.b = p.getBufs()
	}
	in := p.b.in
	if cap(in)-len(in) < readSize {
		// Held back more than the stages' bounds say: never in
		// practice, but a read must have room.
		in = slices.Grow(in, readSize)
		p.b.in = in
	}
	return in[len(in):cap(in)]
}

// getBufs returns buffers for the pipeline, from the pool when it has some
// large enough.
func (p *pipeline) getBufs() *pipeBufs {
	size, n := p.bufSize(), len(p.stages)
	pb, _ := p.stages[0].bufs.Get().(*pipeBufs)
	if pb == nil || cap(pb.in) < size {
		pb = &pipeBufs{in: make([]byte, 0, size), tails: make([]byte, 0, size-readSize)}
	}
	if cap(pb.held) < n {
		pb.held, pb.tailLen = make([]int, n), make([]int, n)
	}
	pb.held, pb.tailLen = pb.held[:n], pb.tailLen[:n]
	clear(pb.held)
	return pb
}

// commit appends the first n bytes of space to the input.
func (p *pipeline) commit(n int) { p.b.in = p.b.in[:len(p.b.in)+n] }

// held returns the number of bytes the stages hold back.
func (p *pipeline) held() int {
	if p.b == nil {
		return 0
	}
	n := 0
	for _, h := range p.b.held {
		n += h
	}
	return n
}

// present reports whether stage i may change b, its input: has[i] when
// valid, which the presence pass over all of the input found (a decoding
// stage that finds nothing in the whole input finds nothing in a part of
// it, whose bytes are the same), or else the stage's own test.
func (p *pipeline) present(i int, b []byte, has []bool, valid bool) bool {
	if valid {
		return has[i]
	}
	return p.stages[i].has(b)
}

// flush scrubs the input through every stage, appends the output to dst
// and returns it with the number of replacements. Unless final, each stage
// keeps the bytes that could still begin one of its patterns.
func (p *pipeline) flush(dst []byte, final bool) ([]byte, int) {
	if p.b == nil {
		p.b = p.getBufs()
	}
	pb := p.b
	in := pb.in
	n := len(p.stages)
	var has [8]bool
	base := len(dst)
	hasOK, copied := false, false
	if p.copies && cap(dst)-base >= len(in) {
		hasOK, copied = presenceCopy(p.stages, in, has[:], dst[base:base+len(in)])
	} else {
		hasOK = presence(p.stages, in, has[:])
	}
	// Stage i reads cur[st:en]; right before it, above bytes hold the
	// held bytes of the stages after it. changed reports that a stage
	// replaced something, after which has says nothing of the next.
	above := 0
	for _, h := range pb.held[1:] {
		above += h
	}
	cur, curScratch := in, -1
	st, en := above, len(in)
	tails := pb.tails[:0]
	total, changed := 0, false
	for i, s := range p.stages {
		b := cur[st:en]
		if i == n-1 {
			var used, c int
			if copied && !changed && curScratch < 0 && st == 0 {
				dst, used, c = s.runCopied(dst, base, b, final)
			} else {
				dst, used, c = s.run(dst, b, final)
			}
			tails = append(tails, b[used:]...)
			pb.tailLen[i] = len(b) - used
			total += c
			break
		}
		next := pb.held[i+1]
		k := 0
		if curScratch == 0 {
			k = 1
		}
		var out []byte
		var used, c int
		if s.m == nil {
			out = p.scratch(k, cur[st-above:st])
			out, used, c = s.run(out, b, final)
		} else if used = s.limit(b, final); p.present(i, b, has[:], hasOK && !changed) {
			out = p.scratch(k, cur[st-above:st])
			var pos int
			if out, pos, c = s.m.scan(out, b, used); c > 0 {
				used = max(pos, used)
				out = append(out, b[pos:used]...)
			}
		}
		tails = append(tails, b[used:]...)
		pb.tailLen[i] = len(b) - used
		above -= next
		if c == 0 {
			// The stage left its input as it was: its output is a
			// prefix of it, with the next stage's held bytes right
			// before, where they were.
			st, en = st-next, st+used
			continue
		}
		pb.scratch[k] = out
		total += c
		changed = true
		// out holds the held bytes of the stages after this one, the
		// next stage's last, then the output.
		cur, curScratch = out, k
		st, en = above, len(out)
	}
	// The new held bytes, the last stage's first.
	blk := pb.in[:0]
	end := len(tails)
	for i := n - 1; i >= 0; i-- {
		blk = append(blk, tails[end-pb.tailLen[i]:end]...)
		end -= pb.tailLen[i]
		pb.held[i] = pb.tailLen[i]
	}
	pb.in, pb.tails = blk, tails[:0]
	return dst, total
}

// scratch returns scratch buffer k holding only prefix.
func (p *pipeline) scratch(k int, prefix []byte) []byte {
	if p.b.scratch[k] == nil {
		p.b.scratch[k] = make([]byte, 0, p.bufSize())
	}
	return append(p.b.scratch[k][:0], prefix...)
}

// release gives the pipeline's buffers back for another Reader whose
// pipeline begins with the same stage; the pipeline must not be used
// afterwards.
func (p *pipeline) release() {
	if p.b == nil {
		return
	}
	p.drop()
	p.stages[0].bufs.Put(p.b)
	p.b = nil
}

// drop discards the held-back bytes of every stage.
func (p *pipeline) drop() {
	if p.b == nil {
		return
	}
	p.b.in = p.b.in[:0]
	clear(p.b.held)
}
