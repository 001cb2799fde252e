package scrub

import "math/bits"

// gramSet is a Bloom filter of 4-byte grams: two bits, at two hashes, for
// each gram added. A gram whose bits are not both set was never added.
type gramSet struct {
	mask uint32 // the set has mask+1 bits
	set  []uint64
}

// newGramSet returns an empty set sized for about n grams: about one bit
// in 16 is set, so that a gram never added finds both of its bits set
// once in a few hundred; the set stays within 256 KiB.
func newGramSet(n int) gramSet {
	logBits := uint(min(21, max(12, bits.Len(uint(max(n, 0)))+5)))
	return gramSet{mask: 1<<logBits - 1, set: make([]uint64, 1<<logBits/64)}
}

func (g *gramSet) add(v uint32) {
	for _, h := range [2]uint32{g.hash(v, hash1), g.hash(v, hash2)} {
		g.set[h>>6] |= 1 << (h & 63)
	}
}

// hash returns a bit of the set for the gram v: bits of its product with
// mul above the low 32, where every bit of v has mixed in. The sieve's
// loops repeat it inline, with constant multipliers.
func (g *gramSet) hash(v uint32, mul uint64) uint32 { return uint32(uint64(v)*mul>>32) & g.mask }

// has reports whether v may have been added.
func (g *gramSet) has(v uint32) bool {
	h1, h2 := g.hash(v, hash1), g.hash(v, hash2)
	return g.set[h1>>6]&(1<<(h1&63)) != 0 && g.set[h2>>6]&(1<<(h2&63)) != 0
}
