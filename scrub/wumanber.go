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
	block int  // bytes hashed per step, 1 to 4
	bits  uint // the table has 1<<bits entries
	shift []uint8
	// cands maps the hash of a window's last block to the patterns whose
	// first m bytes end in that block, longest first.
	cands map[uint32][]int32
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
	w.cands = make(map[uint32][]int32)
	for k, f := range find {
		for j := w.block - 1; j < w.m; j++ {
			h := w.hash(blockValue(f[j-w.block+1 : j+1]))
			d := uint8(w.m - 1 - j)
			w.shift[h] = min(w.shift[h], d)
			if d == 0 {
				w.cands[h] = append(w.cands[h], int32(k))
			}
		}
	}
	for _, c := range w.cands {
		slices.SortFunc(c, func(a, b int32) int { return len(find[b]) - len(find[a]) })
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

// next returns the start and pattern index of the leftmost-longest match
// in b at or after from, or -1, -1.
func (w *wuManber) next(b []byte, from int) (int, int) {
	m, n := w.m, len(b)
	e := from + m - 1 // the window's last byte
	if w.block == 1 {
		for e < n {
			h := uint32(b[e])
			if s := w.shift[h]; s != 0 {
				e += int(s)
				continue
			}
			if k := w.verify(b, e-m+1, h); k >= 0 {
				return e - m + 1, k
			}
			e++
		}
		return -1, -1
	}
	// The window is at least 4 bytes long, so e-3 >= from >= 0. Loading
	// the four bytes that end at e and dropping the low ones leaves the
	// block.
	drop := 8 * uint(4-w.block)
	hs := 32 - w.bits
	shift := w.shift
	for e < n {
		h := ((binary.LittleEndian.Uint32(b[e-3:]) >> drop) * 0x9E3779B1) >> hs
		if s := shift[h&uint32(len(shift)-1)]; s != 0 {
			e += int(s)
			continue
		}
		if k := w.verify(b, e-m+1, h); k >= 0 {
			return e - m + 1, k
		}
		e++
	}
	return -1, -1
}

// verify returns the longest pattern that starts at b[s:], or -1.
func (w *wuManber) verify(b []byte, s int, h uint32) int {
	for _, k := range w.cands[h] {
		f := w.find[k]
		if len(b)-s >= len(f) && string(b[s:s+len(f)]) == f {
			return int(k)
		}
	}
	return -1
}
