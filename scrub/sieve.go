package scrub

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// gramLen is the length of the grams a sieve indexes: one 32-bit load.
const gramLen = 4

// minSieveWindow is the shortest pattern length for which the sieve
// searches instead of the shift table: a stride of 9 bytes or more. It is
// the length from which values have base64 forms (minBase64Secret), so
// that API keys use the sieve; shorter sets have not been measured with
// it.
const minSieveWindow = 12

// sieve searches instead of the Wu–Manber shift table when every pattern
// is at least minSieveWindow bytes long. It holds two bits, at two hashes, for
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
	find    []string
	stride  int // the distance between two grams looked at
	gramSet     // every gram of every pattern
	// refs lists where the patterns hold each gram, grouped by bucket
	// (the gram's first hash, masked to bucketMask): bucket h's are
	// refs[start[h]:start[h+1]]. A flat list, not a map of slices, so
	// that thousands of secrets cost a few bytes a gram.
	bucketMask uint32
	start      []int32
	refs       []gramRef
}

// gramRef says that pattern k holds the gram v at offset off. v tells
// the grams of a bucket apart before a pattern is compared.
type gramRef struct {
	k, off int32
	v      uint32
}

// newSieve returns a sieve for find, whose shortest pattern is m bytes
// long; m must be at least gramLen.
func newSieve(find []string, m int) *sieve {
	n := 0
	for _, f := range find {
		n += len(f) - gramLen + 1
	}
	s := &sieve{find: find, stride: m - gramLen + 1, gramSet: newGramSet(n)}
	// About four grams a bucket.
	s.bucketMask = 1<<max(0, bits.Len(uint(n))-2) - 1
	s.start = make([]int32, s.bucketMask+2)
	s.refs = make([]gramRef, n)
	// Count each bucket's grams, then place them after the buckets
	// before it.
	each := func(fn func(k, i int, v uint32)) {
		for k, f := range find {
			for i := 0; i+gramLen <= len(f); i++ {
				fn(k, i, blockValue(f[i:i+gramLen]))
			}
		}
	}
	each(func(k, i int, v uint32) {
		s.add(v)
		s.start[s.bucket(v)+1]++
	})
	for h := 1; h < len(s.start); h++ {
		s.start[h] += s.start[h-1]
	}
	fill := slices.Clone(s.start[:len(s.start)-1])
	each(func(k, i int, v uint32) {
		h := s.bucket(v)
		s.refs[fill[h]] = gramRef{int32(k), int32(i), v}
		fill[h]++
	})
	return s
}

// bucket returns the bucket of refs that holds the gram v.
func (s *sieve) bucket(v uint32) uint32 { return uint32(uint64(v)*hash1>>32) & s.bucketMask }

// hash1 and hash2 are the multipliers of the sieve's two hashes.
const (
	hash1 = 0x9E3779B97F4A7C15
	hash2 = 0xC2B2AE3D27D4EB4F
)

// next returns the start and pattern index of the leftmost-longest match
// in b at or after from, or -1, -1.
func (s *sieve) next(b []byte, from int) (int, int) {
	// A match that starts at or after from holds in full the gram at
	// one of from, from+stride, ..., the first of them at or after its
	// start; no gram starts after len(b)-4. The loop keeps few values
	// live, so that they stay in registers.
	set, mask, stride := s.set, s.mask, s.stride
	for p := from; p <= len(b)-gramLen; p += stride {
		v := binary.LittleEndian.Uint32(b[p : p+gramLen])
		if h := uint32(uint64(v)*hash1>>32) & mask; set[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		if h := uint32(uint64(v)*hash2>>32) & mask; set[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		if at, k := s.verify(b, from, p, v); at >= 0 {
			return at, k
		}
	}
	return -1, -1
}

// verify returns the leftmost-longest match that starts at or after from
// and holds, as the first gram looked at, the gram v at p; or -1, -1.
// A match that starts earlier than p-stride holds an earlier gram looked
// at, where it was found, so the leftmost match here is the leftmost of
// all.
func (s *sieve) verify(b []byte, from, p int, v uint32) (int, int) {
	at, k := -1, -1
	h := s.bucket(v)
	// A bucket may also list grams other than v: their patterns do not
	// match here, since a match would hold v where they hold theirs.
	for _, r := range s.refs[s.start[h]:s.start[h+1]] {
		if r.v != v {
			continue
		}
		st := p - int(r.off)
		f := s.find[r.k]
		if st < from || st+len(f) > len(b) || at >= 0 && (st > at || st == at && len(f) <= len(s.find[k])) {
			continue
		}
		if string(b[st:st+len(f)]) == f {
			at, k = st, int(r.k)
		}
	}
	return at, k
}

// tailHit serves the search for a proper prefix of a pattern at the end
// of b, from position i (at most len(b)-4) on. On the grid len(b)-4,
// len(b)-4-stride, ..., it returns the first position q at or after i
// where the gram may be a pattern's, or len(b) if there is none. A proper
// prefix b[j:] with j in (q-stride, q] holds the gram at q in full, at
// offset q-j of its pattern, so no j before the q returned, and after the
// grid point before it, starts a prefix: the search costs a lookup per
// stride bytes of the tail, which do not depend on each other.
func (s *sieve) tailHit(b []byte, i int) int {
	last := len(b) - gramLen
	set, mask := s.set, s.mask
	for q := last - (last-i)/s.stride*s.stride; q <= last; q += s.stride {
		v := binary.LittleEndian.Uint32(b[q:])
		if h := uint32(uint64(v)*hash1>>32) & mask; set[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		if h := uint32(uint64(v)*hash2>>32) & mask; set[h>>6]&(1<<(h&63)) != 0 {
			return q
		}
	}
	return len(b)
}
