package scrub

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
)

// The shift table advances by up to the shortest pattern's length per
// lookup, a few nanoseconds each, so it is fast for long patterns and slow
// for short ones. A set of at most maxSmall patterns, each no longer than
// the SIMD substring search of package bytes handles (63 bytes on amd64)
// and one of them shorter than minShiftLen, is searched with bytes.Index,
// one pattern at a time, instead.
const (
	maxSmall    = 4
	maxSmallLen = 63
	minShiftLen = 16
)

// stage is one single-pass matcher: a set of patterns, the replacement of
// each, and an index that finds the leftmost-longest match.
type stage struct {
	find   []string
	findB  [][]byte // find as byte slices, for bytes.Index
	repl   []string
	maxLen int
	// sorted holds the patterns in byte order and first marks their first
	// bytes; together they answer "could a pattern start here?" for the
	// bytes at the end of a buffer.
	sorted []string
	first  [256]bool
	// longer marks the first bytes of patterns of two bytes or more:
	// the last byte of a buffer is a proper prefix where it is marked.
	longer [256]bool
	// pairs, when not nil, marks the first two bytes of every pattern,
	// and heads, when not nil, the hashes of the first four, so that
	// holdStart rarely needs the search.
	pairs *pairSet
	heads *headSet
	// growNum/growDen is the largest len(repl)/len(find), at least 1: no
	// input of n bytes scrubs into more than n*growNum/growDen bytes.
	growNum, growDen int
	wm               *wuManber // nil: search with bytes.Index
	literal          bool      // built by NewPairs: runs first in a Chain
	// m, when not nil, is a matcher that reads text as a decoder does
	// (escapes, line breaks); it replaces the literal search, and find
	// holds its patterns only to be counted.
	m matcher
	// bufs recycles the buffers (*pipeBufs) of Readers whose pipeline
	// starts with this stage, so that a stream does not leave 32 KiB of
	// garbage behind.
	bufs sync.Pool
}

// matcher is a stage that decodes what it reads. Its result is defined by
// its own rules (see escapes and wrapped); like the literal search it
// keeps, when not final, the bytes that more input could change.
type matcher interface {
	// scan appends to dst b scrubbed up to pos, the end of its last
	// match (0 without one), and returns it with pos and the number of
	// matches; no match starts at or after limit. The rest of b, up to
	// limit, is as it was (see stage.run).
	scan(dst, b []byte, limit int) ([]byte, int, int)
	// has reports false only if run would leave b unchanged: it is
	// true exactly when at is true at one of b's special bytes (see
	// specialBoth).
	has(b []byte) bool
	// at reports whether the special byte b[i] makes has true.
	at(b []byte, i int) bool
	// hold returns where run, when not final, stops consuming b.
	hold(b []byte) int
	// holdLen bounds the bytes run keeps back.
	holdLen() int
	// triggered reports whether an earlier stage that writes one of
	// repl in place of a match may make has true where it was false.
	triggered(repl []string) bool
}

// newMatcherStage returns a stage that runs m, whose patterns (decoded)
// are find and replacements repl.
func newMatcherStage(m matcher, find, repl []string) *stage {
	s := &stage{find: find, repl: repl, m: m, maxLen: m.holdLen(), growNum: 1, growDen: 1}
	for i, f := range find {
		// A match takes at least len(f) bytes of input.
		if len(repl[i])*s.growDen > s.growNum*len(f) {
			s.growNum, s.growDen = len(repl[i]), len(f)
		}
	}
	return s
}

// has reports whether b may hold a match: false means run leaves b as it
// is.
func (s *stage) has(b []byte) bool {
	if s.m != nil {
		var has [1]bool
		if presence([]*stage{s}, b, has[:]) {
			return has[0]
		}
		return s.m.has(b)
	}
	at, _ := s.next(b, 0, &cursor{})
	return at >= 0
}

func newStage(find, repl []string) *stage {
	s := &stage{find: find, repl: repl, growNum: 1, growDen: 1}
	minLen := len(find[0])
	for i, f := range find {
		s.maxLen = max(s.maxLen, len(f))
		s.first[f[0]] = true
		s.longer[f[0]] = s.longer[f[0]] || len(f) > 1
		s.findB = append(s.findB, []byte(f))
		if len(repl[i])*s.growDen > s.growNum*len(f) {
			s.growNum, s.growDen = len(repl[i]), len(f)
		}
		minLen = min(minLen, len(f))
	}
	s.sorted = slices.Clone(find)
	slices.Sort(s.sorted)
	if len(find) > maxSmall {
		s.pairs = newPairSet(find)
		if minLen >= gramLen {
			s.heads = newHeadSet(find)
		}
	}
	if len(find) > maxSmall || s.maxLen > maxSmallLen || minLen >= minShiftLen {
		s.wm = newWuManber(find)
	}
	return s
}

// cursor is the search state of one pass over one buffer. The zero cursor
// is ready for use.
type cursor struct {
	init bool
	// at[k] is the first occurrence of pattern k at or after the position
	// it was searched from, or noMatch; used by the bytes.Index search.
	at [maxSmall]int
}

const noMatch = int(^uint(0) >> 1)

// next returns the start and pattern index of the leftmost-longest match
// in b at or after from, or -1, -1. Successive calls on the same b must
// pass the same c and a non-decreasing from.
func (s *stage) next(b []byte, from int, c *cursor) (int, int) {
	if s.wm != nil {
		return s.wm.next(b, from)
	}
	if !c.init {
		c.init = true
		for k := range s.find {
			c.at[k] = -1
		}
	}
	best, bk := -1, -1
	for k, p := range s.findB {
		at := c.at[k]
		if at < from {
			at = noMatch
			if i := bytes.Index(b[from:], p); i >= 0 {
				at = from + i
			}
			c.at[k] = at
		}
		if at == noMatch {
			continue
		}
		if best < 0 || at < best || at == best && len(p) > len(s.findB[bk]) {
			best, bk = at, k
		}
	}
	return best, bk
}

// run appends to dst the scrubbed b and returns it with the number of
// bytes of b consumed and the number of replacements. When final is false
// it stops before the first position whose bytes could still grow into a
// match, so that the rest can be scrubbed together with what follows;
// when final is true it consumes all of b.
func (s *stage) run(dst, b []byte, final bool) ([]byte, int, int) {
	if s.m != nil {
		limit := s.limit(b, final)
		dst, pos, n := s.m.scan(dst, b, limit)
		end := max(pos, limit)
		return append(dst, b[pos:end]...), end, n
	}
	return s.runFrom(dst, b, 0, s.end(b, final))
}

// limit returns where a decoding stage's run stops looking for matches:
// the end of b when final, else where it begins to hold b back.
func (s *stage) limit(b []byte, final bool) int {
	if final {
		return len(b)
	}
	return s.m.hold(b)
}

// end returns where a literal stage's run stops consuming b: its end when
// final, else the first position that could begin a match.
func (s *stage) end(b []byte, final bool) int {
	if final {
		return len(b)
	}
	return s.holdStart(b, 0)
}

// runCopied is run for a literal stage whose output already holds a copy
// of b after base (dst[base:base+len(b)]): it writes over the copy from
// the first match on, and without one only cuts the output to what run
// would consume.
func (s *stage) runCopied(dst []byte, base int, b []byte, final bool) ([]byte, int, int) {
	end := s.end(b, final)
	at, _ := s.next(b, 0, &cursor{})
	if at < 0 || at >= end {
		return dst[:base+end], end, 0
	}
	return s.runFrom(dst[:base+at], b, at, end)
}

// runFrom is run for a literal stage where dst already holds b[:from], no
// match starts before from, and end is the first position at or after
// from that could begin a match that more input completes (len(b) when
// final).
func (s *stage) runFrom(dst, b []byte, from, end int) ([]byte, int, int) {
	var c cursor
	pos, n := from, 0
	for pos < end {
		at, k := s.next(b, pos, &c)
		if at < 0 || at >= end {
			break
		}
		// A match that starts before end is complete and the longest
		// at its start: a longer one would make its start a hold-back
		// position, and end is the first of those.
		dst = append(dst, b[pos:at]...)
		dst = append(dst, s.repl[k]...)
		n++
		pos = at + len(s.find[k])
		if pos > end {
			end = s.holdStart(b, pos)
		}
	}
	if pos < end {
		dst = append(dst, b[pos:end]...)
		pos = end
	}
	return dst, pos, n
}

// holdStart returns the first position at or after from where the rest of
// b is a proper prefix of some pattern, or len(b).
func (s *stage) holdStart(b []byte, from int) int {
	i := max(from, len(b)-s.maxLen+1)
	if s.wm != nil && s.wm.sieve != nil {
		// A proper prefix of four bytes or more holds a gram of its
		// pattern wherever it holds a whole one (see sieve.tailHit):
		// look at positions only where the sieve lets them start one.
		sv := s.wm.sieve
		for i+gramLen <= len(b) {
			q := sv.tailHit(b, i)
			if q == len(b) {
				// No prefix of four bytes or more: at most three
				// are left.
				i = max(i, len(b)-gramLen+1)
				break
			}
			for i = max(i, q-sv.stride+1); i <= q; i++ {
				if s.prefixAt(b, i) {
					return i
				}
			}
		}
	}
	if s.pairs != nil {
		// A proper prefix of four bytes or more starts with the
		// first four of a pattern.
		if s.heads != nil {
			for ; i+gramLen <= len(b); i++ {
				if s.heads.has(binary.LittleEndian.Uint32(b[i:])) && s.isProperPrefix(b[i:]) {
					return i
				}
			}
		}
		for ; i < len(b)-1; i++ {
			if s.pairs.has(b[i], b[i+1]) && s.isProperPrefix(b[i:]) {
				return i
			}
		}
	}
	for ; i < len(b)-1; i++ {
		if s.first[b[i]] && s.isProperPrefix(b[i:]) {
			return i
		}
	}
	if i == len(b)-1 && s.longer[b[i]] {
		return i
	}
	return len(b)
}

// prefixAt reports whether b[i:], at least four bytes, is a proper prefix
// of some pattern.
func (s *stage) prefixAt(b []byte, i int) bool {
	if s.heads != nil && !s.heads.has(binary.LittleEndian.Uint32(b[i:])) {
		return false
	}
	return s.first[b[i]] && s.isProperPrefix(b[i:])
}

// pairSet marks the first two bytes of patterns (bit b[0]<<8|b[1]); a
// pattern of one byte is marked with every second byte.
type pairSet [1 << 16 / 64]uint64

func newPairSet(pats []string) *pairSet {
	ps := new(pairSet)
	for _, f := range pats {
		if len(f) == 1 {
			for c := range 256 {
				ps.set(f[0], byte(c))
			}
			continue
		}
		ps.set(f[0], f[1])
	}
	return ps
}

func (ps *pairSet) set(a, b byte) {
	i := uint(a)<<8 | uint(b)
	ps[i>>6] |= 1 << (i & 63)
}

func (ps *pairSet) has(a, b byte) bool {
	i := uint(a)<<8 | uint(b)
	return ps[i>>6]&(1<<(i&63)) != 0
}

// headSet marks the hashes of the first four bytes of patterns that long.
type headSet [1 << 16 / 64]uint64

func newHeadSet(pats []string) *headSet {
	hs := new(headSet)
	for _, f := range pats {
		h := headHash(blockValue(f[:gramLen]))
		hs[h>>6] |= 1 << (h & 63)
	}
	return hs
}

func headHash(v uint32) uint32 { return v * 0x9E3779B1 >> 16 }

func (hs *headSet) has(v uint32) bool {
	h := headHash(v)
	return hs[h>>6]&(1<<(h&63)) != 0
}

// isProperPrefix reports whether t is a prefix of a longer pattern. The
// patterns that start with t are contiguous in sorted order and the first
// of them is the first pattern not below t.
func (s *stage) isProperPrefix(t []byte) bool {
	lo, hi := 0, len(s.sorted)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.sorted[m] < string(t) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for ; lo < len(s.sorted); lo++ {
		p := s.sorted[lo]
		if len(p) < len(t) || p[:len(t)] != string(t) {
			return false
		}
		if len(p) > len(t) {
			return true
		}
	}
	return false
}
