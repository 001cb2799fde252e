package scrub

import (
	"errors"
	"strings"
)

// ErrUnmaskable is returned where a secret cannot be replaced by a mask of
// its own length: a form of it shorter than its placeholder occurs, or the
// bytes are compressed. The caller must not pass the bytes on.
var ErrUnmaskable = errors.New("scrub: a secret cannot be masked at its own length")

// maskFill pads a placeholder to the length of the form it masks.
const maskFill = '*'

// Masker replaces every form of a secret (the forms Compile replaces) by a
// mask of exactly the same length: the placeholder <<NAME>>, padded with
// '*' to the form's length. It is for bodies whose framing counts bytes,
// such as gRPC's length-prefixed messages, where a replacement of another
// length would corrupt every message after it. A form shorter than its
// placeholder cannot be masked that way: finding one is ErrUnmaskable.
//
// A Masker is immutable and safe for concurrent use; a nil *Masker, like
// one built from no secrets, masks nothing.
type Masker struct {
	mask  *Replacer // forms at least as long as their placeholder
	short *Replacer // shorter forms: found, never replaced
}

// CompileMask returns a Masker for secrets. Like Compile, it is meant to
// run once per rules load.
func CompileMask(secrets []Secret) *Masker {
	var find, repl, short, shortRepl []string
	eachForm(secrets, func(placeholder, f string) {
		if m, ok := maskFor(placeholder, len(f)); ok {
			find, repl = append(find, f), append(repl, m)
		} else {
			short, shortRepl = append(short, f), append(shortRepl, placeholder)
		}
	})
	return &Masker{mask: newReplacer(find, repl, false), short: newReplacer(short, shortRepl, false)}
}

// maskFor returns the mask of a form n bytes long, and whether one fits.
func maskFor(placeholder string, n int) (string, bool) {
	if n < len(placeholder) {
		return "", false
	}
	return placeholder + strings.Repeat(string(rune(maskFill)), n-len(placeholder)), true
}

// Len returns the number of forms m looks for. Zero means m leaves every
// input unchanged.
func (m *Masker) Len() int {
	if m == nil {
		return 0
	}
	return m.mask.Len() + m.short.Len()
}

// Mask overwrites, in place, every form of a secret in b with its mask and
// returns the number of masks written. b keeps its length. If a form too
// short for a mask occurs, Mask returns ErrUnmaskable and b must be
// discarded (it may be partly masked).
func (m *Masker) Mask(b []byte) (int, error) {
	if m.Len() == 0 || len(b) == 0 {
		return 0, nil
	}
	if _, n := m.short.replaceIfAny(b); n > 0 {
		return 0, ErrUnmaskable
	}
	out, n := m.mask.replaceIfAny(b)
	if n == 0 {
		return 0, nil
	}
	if len(out) != len(b) {
		// Every mask has its form's length; leftmost-longest matching
		// keeps that true of the whole. Fail closed if it ever did not.
		return 0, ErrUnmaskable
	}
	copy(b, out)
	return n, nil
}
