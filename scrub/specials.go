package scrub

import (
	"math/bits"
	"strings"
)

// The decoding stages start from a few bytes: the escapes stage from '%'
// and '\\', the wrapped stage from '\n'. Testing each stage for its own
// bytes takes a bytes.IndexByte pass per byte, and for line feeds a call
// per line, which on text of short lines costs more than the rest of the
// scrub. Where the processor has vector instructions for it, presence
// instead finds all three bytes in one pass that marks them in a bitmap of
// 64-byte blocks, and asks each stage only about the bytes marked.

// A byteTable is a set of bytes below 0x80 with distinct low nibbles:
// byte c is in it when t[c&15] == c. The other entries hold i+1, which no
// byte with low nibble i equals.
type byteTable [16]byte

func newByteTable(cs ...byte) *byteTable {
	t := new(byteTable)
	for i := range t {
		t[i] = byte(i+1) & 15
	}
	for _, c := range cs {
		t[c&15] = c
	}
	return t
}

func (t *byteTable) has(c byte) bool { return c < 0x80 && t[c&15] == c }

// The tables of the bytes the decoding stages start from: both stages',
// and each one's.
var (
	specialBoth    = newByteTable('\n', '%', '\\')
	specialEscapes = newByteTable('%', '\\')
	specialWrapped = newByteTable('\n')
)

// specialMasksGeneric is specialMasks a byte at a time: out[i] gets bit j
// for byte 64*i+j of b where t holds it, unless the next byte of the same
// block is not a follower (see follows).
func specialMasksGeneric(b []byte, t *byteTable, out []uint64) {
	for i := range out {
		var w uint64
		blk := b[64*i : 64*i+64]
		for j, c := range blk {
			if t.has(c) && (j == 63 || follows(blk[j+1])) {
				w |= 1 << j
			}
		}
		out[i] = w
	}
}

// follows reports whether a stage may read c right after a special byte:
// a hex digit after %, a JSON escape letter (" \ / b f n r t u) after \,
// a base64 character (A-Z a-z 0-9 + / - _ =) after a line feed. After
// any other byte the special byte begins no escape and ends no line break
// inside base64, so the vector pass does not mark it: a line feed before
// an indent, a {, a blank line or a quote costs nothing, which is most of
// them in JSON lines and pretty-printed JSON.
func follows(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(`+/-_="\`, c) >= 0
}

// followLow and followHigh classify the followers by nibble for the vector
// pass: byte c follows exactly when followLow[c&15]&followHigh[c>>4] is
// not zero. followHigh[h] is bit h (none from 8 on: followers are ASCII),
// followLow[l] the bits of the high nibbles h for which h<<4|l follows.
var followLow, followHigh = followTables()

func followTables() (lo, hi [16]byte) {
	for h := range 8 {
		hi[h] = 1 << h
		for l := range 16 {
			if follows(byte(h<<4 | l)) {
				lo[l] |= 1 << h
			}
		}
	}
	return lo, hi
}

// presence sets has[k] to stages[k].m.has(b) for the decoding stages
// among stages, in one pass over b. It returns false, setting nothing,
// where that pass has no vector code, stages has more than len(has), or
// more than one escapes or wrapped stage: the caller then asks each stage.
func presence(stages []*stage, b []byte, has []bool) bool {
	ok, _ := presenceCopy(stages, b, has, nil)
	return ok
}

// presenceCopy is presence that, when cp is not nil, also copies b to cp
// (of b's length) in the same pass; copied reports that it did (ok and cp
// not nil). A stage found present may still replace nothing, and then the
// copy is the output up to the literal stage's first match.
func presenceCopy(stages []*stage, b []byte, has []bool, cp []byte) (ok, copied bool) {
	if !haveSpecialMasks || len(stages) > len(has) {
		return false, false
	}
	var esc *escapes
	var wr *wrapped
	ek, wk := -1, -1
	for k, s := range stages {
		switch m := s.m.(type) {
		case nil:
		case *escapes:
			if esc != nil {
				return false, false
			}
			esc, ek = m, k
		case *wrapped:
			if wr != nil {
				return false, false
			}
			wr, wk = m, k
		default:
			return false, false
		}
	}
	if esc == nil && wr == nil {
		return true, false
	}
	// A stage found present is done with (set to nil), and the bytes
	// marked are those of the stages not yet found.
	if cp != nil && len(cp) < len(b) {
		return false, false
	}
	var masks [64]uint64
	i := 0
	for esc != nil || wr != nil {
		t := marks(esc, wr)
		if len(b)-i < 64 {
			if cp != nil {
				copy(cp[i:], b[i:])
			}
			for ; i < len(b) && (esc != nil || wr != nil); i++ {
				if t.has(b[i]) {
					esc, wr = presentAt(b, i, esc, wr, has, ek, wk)
				}
			}
			i = len(b)
			break
		}
		n := min((len(b)-i)/64, len(masks))
		if cp != nil {
			copyMasks(cp[i:], b[i:i+64*n], t, masks[:n])
		} else {
			specialMasks(b[i:i+64*n], t, masks[:n])
		}
		for k, w := range masks[:n] {
			for ; w != 0; w &= w - 1 {
				// presentAt, with the common case inline: a line
				// feed that no base64 ends at.
				j := i + 64*k + bits.TrailingZeros64(w)
				if b[j] == '\n' && (wr == nil || !wr.at(b, j)) {
					continue
				}
				if esc, wr = presentAt(b, j, esc, wr, has, ek, wk); esc == nil && wr == nil {
					break
				}
			}
		}
		i += 64 * n
	}
	// Every stage found present before the end: copy the rest.
	if cp != nil {
		copy(cp[i:], b[i:])
	}
	return true, cp != nil
}

// marks returns the table of the bytes that esc and wr, those not nil,
// start from.
func marks(esc *escapes, wr *wrapped) *byteTable {
	switch {
	case esc == nil:
		return specialWrapped
	case wr == nil:
		return specialEscapes
	}
	return specialBoth
}

// presentAt marks has[ek] or has[wk] when b[i] makes esc or wrap present,
// and returns them with the one marked set to nil.
func presentAt(b []byte, i int, esc *escapes, wr *wrapped, has []bool, ek, wk int) (*escapes, *wrapped) {
	if b[i] == '\n' {
		if wr != nil && wr.at(b, i) {
			has[wk], wr = true, nil
		}
	} else if esc != nil && esc.at(b, i) {
		has[ek], esc = true, nil
	}
	return esc, wr
}
