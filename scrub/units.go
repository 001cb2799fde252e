package scrub

import "unicode/utf8"

// A unit is one character of text as a decoder reads it: a percent escape
// (%2F, any hex case), a JSON escape (\/, \", \\, \b, \f, \n, \r, \t, or
// \uXXXX in any hex case, a surrogate pair of two of them making one
// unit), or else a single raw byte. Units are read greedily from the start
// of a text, so that text is a sequence of units; a unit is never longer
// than maxUnit bytes.
type unit struct {
	n      int     // bytes of input
	dec    [4]byte // the decoded bytes (UTF-8 for \u escapes)
	dn     int     // len(dec) in use, at least 1
	escape bool    // an escape, not a raw byte
}

const maxUnit = 12 // a surrogate pair, \uD83D\uDE00

// shortEscape returns the decoded byte and the length of the escape at
// b[i] when it is %XX or \c, the common ones, which decode to one byte;
// n is 0 for anything else. The hot loops read these without building a
// unit.
func shortEscape(b []byte, i int) (d byte, n int) {
	switch b[i] {
	case '%':
		if i+2 < len(b) {
			if h, l := unhex(b[i+1]), unhex(b[i+2]); h >= 0 && l >= 0 {
				return byte(h<<4 | l), 3
			}
		}
	case '\\':
		if i+1 < len(b) {
			if d := jsonEscape(b[i+1]); d != 0 {
				return d, 2
			}
		}
	}
	return 0, 0
}

// unitAt returns the unit that starts at b[i]. An escape cut short by the
// end of b is read as a raw byte.
func unitAt(b []byte, i int) unit {
	if d, n := shortEscape(b, i); n > 0 {
		return unit{n: n, dec: [4]byte{d}, dn: 1, escape: true}
	}
	c := b[i]
	if c == '\\' && i+1 < len(b) {
		if r, ok := hex4(b, i+1); ok {
			n := 6
			if utf16IsHigh(r) {
				if lo, ok := hex4(b, i+7); ok && i+6 < len(b) && b[i+6] == '\\' && utf16IsLow(lo) {
					r, n = (r-0xD800)<<10|(lo-0xDC00)+0x10000, 12
				} else {
					r = utf8.RuneError
				}
			} else if utf16IsLow(r) {
				r = utf8.RuneError
			}
			u := unit{n: n, escape: true}
			u.dn = utf8.EncodeRune(u.dec[:], rune(r))
			return u
		}
	}
	return unit{n: 1, dec: [4]byte{c}, dn: 1}
}

// incomplete reports whether t, the end of a buffer, starts an escape
// that more bytes could make longer than it reads now: "%", "%4", "\",
// "\u00", or a high surrogate that a low one may follow.
func incomplete(t []byte) bool {
	switch {
	case len(t) == 0:
		return false
	case t[0] == '%':
		return len(t) == 1 || len(t) == 2 && unhex(t[1]) >= 0
	case t[0] != '\\':
		return false
	case len(t) == 1:
		return true
	case t[1] != 'u':
		return false
	}
	// \u and up to 11 more bytes: \uXXXX\uXXXX at most.
	if len(t) >= maxUnit {
		return false
	}
	for i := 2; i < len(t) && i < 6; i++ {
		if unhex(t[i]) < 0 {
			return false
		}
	}
	if len(t) < 6 {
		return true
	}
	if r, _ := hex4(t, 1); !utf16IsHigh(r) {
		return false
	}
	// A high surrogate: a low one may follow.
	rest := t[6:]
	want := []byte{'\\', 'u'}
	for i, c := range rest {
		switch {
		case i < 2 && c != want[i]:
			return false
		case i == 2 && c != 'd' && c != 'D':
			return false
		case i == 3 && !(c >= 'c' && c <= 'f' || c >= 'C' && c <= 'F'):
			return false
		case i >= 4 && unhex(c) < 0:
			return false
		}
	}
	return true
}

// jsonEscape returns the byte that \c stands for in JSON, other than \u,
// or 0.
func jsonEscape(c byte) byte {
	switch c {
	case '"', '\\', '/':
		return c
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return 0
}

// hex4 reads u and four hex digits at b[i:], as in \uXXXX after the
// backslash.
func hex4(b []byte, i int) (uint32, bool) {
	if i+4 >= len(b) || b[i] != 'u' {
		return 0, false
	}
	var r uint32
	for _, c := range b[i+1 : i+5] {
		h := unhex(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | uint32(h)
	}
	return r, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func utf16IsHigh(r uint32) bool { return 0xD800 <= r && r < 0xDC00 }
func utf16IsLow(r uint32) bool  { return 0xDC00 <= r && r < 0xE000 }

// fold maps a decoded byte to the byte it is compared as: a space and a
// plus are one, since form decoding reads + as a space and a secret may
// hold either.
func fold(c byte) byte {
	if c == ' ' {
		return '+'
	}
	return c
}

// isIntroducer reports whether c can begin an escape.
func isIntroducer(c byte) bool { return c == '%' || c == '\\' }

// resync returns a position at or before p, and not before floor, that is
// a unit boundary of b read from floor (itself a boundary): one with no
// escape introducer in the maxUnit-1 bytes before it, since only an
// escape spans bytes.
func resync(b []byte, p, floor int) int {
	for p > floor {
		lo := max(floor, p-(maxUnit-1))
		last := -1
		for i := p - 1; i >= lo; i-- {
			if isIntroducer(b[i]) {
				last = i
				break
			}
		}
		if last < 0 {
			return p
		}
		p = last
	}
	return floor
}
