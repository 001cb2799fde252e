package scrub

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// maxWindow caps the Wu–Manber window so that every shift fits a byte.
const maxWindow = 128

// wuManber finds many patterns in one pass (Wu and Manber, "A fast
// algorithm for multi-pattern searching", 1994). A window as long as the
// shortest pattern slides over the input; the hash of its last few bytes
// indexes a table that says how far the window may move without skipping a
// possible match start. A zero shift means the window may hold the prefix
// of some pattern, which is then verified.
type wuManber struct {
	find  []string
	m     int  // window length: the shortest pattern's length, capped
	block int  // bytes hashed per step, 1 to 3
	bits  uint // the table has 1<<bits entries
	shift []uint8
	// For a hash h with a zero shift, cands[slot[h]-1] lists the patterns
	// whose first m bytes end in a block of that hash, longest first.
	slot  []uint32
	cands [][]int32
	// sieve, when not nil, searches instead of the shift table (see
	// sieve); the table is built all the same, so that the tests can
	// search the same patterns with either.
	sieve *sieve
}

func newWuManber(find []string) *wuManber {
	w := &wuManber{find: find, m: maxWindow}
	for _, f := range find {
		w.m = min(w.m, len(f))
	}
	switch {
	case w.m < 4:
		w.block = 1
	case w.m < 6:
		w.block = 2
	default:
		w.block = 3
	}
	if w.block == 1 {
		w.bits = 8
	} else {
		entries := len(find) * (w.m - w.block + 1)
		w.bits = uint(min(16, max(8, bits.Len(uint(entries))+3)))
	}
	w.shift = make([]uint8, 1<<w.bits)
	for i := range w.shift {
		w.shift[i] = uint8(w.m - w.block + 1)
	}
	w.slot = make([]uint32, len(w.shift))
	for k, f := range find {
		for j := w.block - 1; j < w.m; j++ {
			h := w.hash(blockValue(f[j-w.block+1 : j+1]))
			d := uint8(w.m - 1 - j)
			w.shift[h] = min(w.shift[h], d)
			if d != 0 {
				continue
			}
			if w.slot[h] == 0 {
				w.cands = append(w.cands, nil)
				w.slot[h] = uint32(len(w.cands))
			}
			w.cands[w.slot[h]-1] = append(w.cands[w.slot[h]-1], int32(k))
		}
	}
	for _, c := range w.cands {
		slices.SortFunc(c, func(a, b int32) int { return len(find[b]) - len(find[a]) })
	}
	if w.m >= minSieveWindow {
		w.sieve = newSieve(find, w.m)
	}
	return w
}

// blockValue packs up to four bytes little-endian, the first byte lowest,
// as the scan loads them.
func blockValue(s string) uint32 {
	var v uint32
	for i := len(s) - 1; i >= 0; i-- {
		v = v<<8 | uint32(s[i])
	}
	return v
}

func (w *wuManber) hash(v uint32) uint32 {
	if w.block == 1 {
		return v
	}
	return (v * 0x9E3779B1) >> (32 - w.bits)
}

// minLanes is the shortest input scanned in two lanes.
const minLanes = 1024

// next returns the start and pattern index of the leftmost-longest match
// in b at or after from, or -1, -1.
//
// Each step of a scan waits for the table lookup of the step before, so a
// single scan is bound by memory latency, not by the processor's width.
// Long inputs are therefore scanned in two interleaved lanes, one over each
// half of the window starts; a match in the first lane is returned at once,
// one in the second only after the first lane has found none.
func (w *wuManber) next(b []byte, from int) (int, int) {
	end := len(b) - w.m + 1 // window starts are below end
	if w.sieve != nil {
		return w.sieve.next(b, from)
	}
	if w.block == 1 {
		return w.scan1(b, from, end)
	}
	if end-from < minLanes {
		return w.scan(b, from, end)
	}
	mid := from + (end-from)/2
	s0, s1 := from, mid // the next window start of each lane
	hit, hitK := -1, -1
	m, drop, hs := w.m, 8*uint(4-w.block), 32-w.bits
	shift := w.shift
	mask := uint32(len(shift) - 1)
	for s0 < mid && s1 < end {
		// The window is at least 4 bytes long, so its last 4 bytes
		// are in b; dropping the low ones of them leaves the block.
		h0 := ((binary.LittleEndian.Uint32(b[s0+m-4:]) >> drop) * 0x9E3779B1) >> hs & mask
		h1 := ((binary.LittleEndian.Uint32(b[s1+m-4:]) >> drop) * 0x9E3779B1) >> hs & mask
		d0, d1 := int(shift[h0]), int(shift[h1])
		if d0 == 0 {
			if k := w.verify(b, s0, h0); k >= 0 {
				return s0, k
			}
			d0 = 1
		}
		if d1 == 0 {
			if k := w.verify(b, s1, h1); k >= 0 {
				hit, hitK = s1, k
				break
			}
			d1 = 1
		}
		s0 += d0
		s1 += d1
	}
	if at, k := w.scan(b, s0, mid); at >= 0 {
		return at, k
	}
	if hit >= 0 {
		return hit, hitK
	}
	return w.scan(b, s1, end)
}

// scan returns the leftmost-longest match whose start is in [s, end), or
// -1, -1. The block is 2 or 3 bytes long.
func (w *wuManber) scan(b []byte, s, end int) (int, int) {
	m, drop, hs := w.m, 8*uint(4-w.block), 32-w.bits
	shift := w.shift
	mask := uint32(len(shift) - 1)
	for s < end {
		h := ((binary.LittleEndian.Uint32(b[s+m-4:]) >> drop) * 0x9E3779B1) >> hs & mask
		if d := shift[h]; d != 0 {
			s += int(d)
			continue
		}
		if k := w.verify(b, s, h); k >= 0 {
			return s, k
		}
		s++
	}
	return -1, -1
}

// scan1 is scan for a block of one byte.
func (w *wuManber) scan1(b []byte, s, end int) (int, int) {
	m := w.m
	for s < end {
		h := uint32(b[s+m-1])
		if d := w.shift[h]; d != 0 {
			s += int(d)
			continue
		}
		if k := w.verify(b, s, h); k >= 0 {
			return s, k
		}
		s++
	}
	return -1, -1
}

// verify returns the longest pattern that starts at b[s:], or -1.
func (w *wuManber) verify(b []byte, s int, h uint32) int {
	for _, k := range w.cands[w.slot[h]-1] {
		f := w.find[k]
		if len(b)-s >= len(f) && string(b[s:s+len(f)]) == f {
			return int(k)
		}
	}
	return -1
}
