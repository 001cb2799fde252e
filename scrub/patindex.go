package scrub

import "slices"

// patIndex indexes the patterns of a decoding stage (escapes, wrapped):
// by first byte, longest first, and the bytes any pattern holds.
type patIndex struct {
	pats    []string
	repl    []string
	byFirst [256][]int32 // patterns by first byte, longest first
	alpha   [256]bool    // bytes of any pattern
	maxLen  int
}

func newPatIndex(pats, repl []string) patIndex {
	x := patIndex{pats: pats, repl: repl}
	for k, p := range pats {
		x.maxLen = max(x.maxLen, len(p))
		x.byFirst[p[0]] = append(x.byFirst[p[0]], int32(k))
		for i := 0; i < len(p); i++ {
			x.alpha[p[i]] = true
		}
	}
	for _, l := range x.byFirst {
		slices.SortStableFunc(l, func(a, b int32) int { return len(pats[b]) - len(pats[a]) })
	}
	return x
}
