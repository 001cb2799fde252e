package scrub

import (
	"encoding/binary"
	"math/bits"
)

// gramLen is the length of the grams a sieve indexes: one 32-bit load.
const gramLen = 4

// minSieveWindow is the shortest pattern length for which Compile puts a
// sieve in front of the Wu–Manber scan: below it the stride is too short
// to beat the shift table.
const minSieveWindow = 12

// sieve is a prefilter in front of the Wu–Manber scan, and replaces it
// when every pattern is long enough. It holds two bits, at two hashes, for
// every 4-byte gram of every pattern (a Bloom filter), and looks at the
// input only every stride bytes, where stride is the shortest pattern's
// length less 3: every match, being at least that long, holds in full one
// of the grams looked at, and that gram is one of its pattern's. Where a
// gram's bits are not both set no match holds it; where they are, the
// patterns that hold the gram, at each offset they hold it, are compared
// with the input there. Unlike the shift table, whose every step waits
// for the lookup before it, the lookups do not depend on each other, so
// the processor runs many at once: on text without secrets the search
// costs one independent lookup per stride bytes.
type sieve struct {
	find   []string
	stride int // the distance between two grams looked at
	shift  uint
	set    []uint64
	// refs lists, for each gram of a pattern, where patterns hold it.
	refs map[uint32][]gramRef
}

// gramRef says that pattern k holds a gram at offset off.
type gramRef struct{ k, off int32 }

// newSieve returns a sieve for find, whose shortest pattern is m bytes
// long; m must be at least gramLen.
func newSieve(find []string, m int) *sieve {
	n := 0
	for _, f := range find {
		n += len(f) - gramLen + 1
	}
	// About one bit in 16 is set, so that a gram of text unrelated to
	// the patterns finds both of its bits set once in a few hundred
	// grams; the set stays within 256 KiB.
	logBits := uint(min(21, max(12, bits.Len(uint(n))+5)))
	s := &sieve{find: find, stride: m - gramLen + 1, shift: 32 - logBits, set: make([]uint64, 1<<logBits/64), refs: make(map[uint32][]gramRef)}
	for k, f := range find {
		for i := 0; i+gramLen <= len(f); i++ {
			v := blockValue(f[i : i+gramLen])
			for _, h := range [2]uint32{v * hash1 >> s.shift, v * hash2 >> s.shift} {
				s.set[h>>6] |= 1 << (h & 63)
			}
			s.refs[v] = append(s.refs[v], gramRef{int32(k), int32(i)})
		}
	}
	return s
}

// hash1 and hash2 are the multipliers of the sieve's two hashes.
const (
	hash1 = 0x9E3779B1
	hash2 = 0x85EBCA77
)

// next returns the start and pattern index of the leftmost-longest match
// in b at or after from, or -1, -1.
func (s *sieve) next(b []byte, from int) (int, int) {
	// A match that starts at or after from holds in full the gram at
	// one of from, from+stride, ..., the first of them at or after its
	// start; no gram starts after len(b)-4.
	set, shift, stride := s.set, s.shift, s.stride
	for p := from; p+gramLen <= len(b); p += stride {
		v := binary.LittleEndian.Uint32(b[p:])
		if h := v * hash1 >> shift; set[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		if h := v * hash2 >> shift; set[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		// A match whose first gram looked at is this one starts
		// after p-stride; one that starts earlier was found at an
		// earlier gram, so the leftmost match here is the leftmost
		// of all.
		at, k := -1, -1
		for _, r := range s.refs[v] {
			st := p - int(r.off)
			f := s.find[r.k]
			if st < from || st+len(f) > len(b) || at >= 0 && (st > at || st == at && len(f) <= len(s.find[k])) {
				continue
			}
			if string(b[st:st+len(f)]) == f {
				at, k = st, int(r.k)
			}
		}
		if at >= 0 {
			return at, k
		}
	}
	return -1, -1
}
