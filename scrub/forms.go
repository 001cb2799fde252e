package scrub

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"unicode/utf8"
)

// forms returns the distinct spellings under which a server may echo v: the
// raw value first, then its JSON string escapes and its percent-encodings,
// each only where it differs from those before it. v must not be empty.
func forms(v string) []string {
	out := []string{v}
	add := func(f string) {
		for _, g := range out {
			if g == f {
				return
			}
		}
		out = append(out, f)
	}
	// encoding/json replaces invalid UTF-8 with U+FFFD, a lossy form that
	// no longer carries the value, so it is not a form of it.
	if utf8.ValidString(v) {
		add(jsonString(v, true))
		add(jsonString(v, false))
	}
	for _, f := range []string{url.QueryEscape(v), url.PathEscape(v)} {
		add(f)
		add(lowerHex(f))
	}
	for _, f := range base64Forms(v) {
		add(f)
	}
	return out
}

// base64Forms returns the standard and URL-safe base64 forms of v inside
// larger base64 text, at each of the three alignments; none for a value
// shorter than minBase64Secret.
func base64Forms(v string) []string {
	if len(v) < minBase64Secret {
		return nil
	}
	var out []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for align := range 3 {
			out = append(out, base64Inner(enc, v, align))
		}
	}
	return out
}

// minBase64Secret is the shortest value whose base64 forms are scrubbed:
// the part of an encoding that a value fixes must be long enough not to
// occur by chance in unrelated base64 text.
const minBase64Secret = 12

// base64Inner returns the characters of enc's encoding of v that v alone
// determines when v follows align bytes of a 3-byte group inside larger
// base64 text: each character carries 6 bits, so the characters that mix
// bits of v with bits of its unknown neighbours, at either end, are left
// out (RFC 4648, section 4).
func base64Inner(enc *base64.Encoding, v string, align int) string {
	b := make([]byte, align, align+len(v))
	s := enc.EncodeToString(append(b, v...))
	n := align + len(v)
	// A full group gives 4 whole characters; a trailing group of 1 or 2
	// bytes fixes 1 or 2 characters.
	end := 4*(n/3) + n%3
	lead := [3]int{0, 2, 3}[align]
	return s[lead:end]
}

// jsonString returns v as encoding/json writes it inside a string literal,
// without the quotes; html selects the \u003c-style escapes of <, > and &.
func jsonString(v string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	// Encoding a valid string cannot fail.
	_ = enc.Encode(v)
	s := strings.TrimSuffix(b.String(), "\n")
	return s[1 : len(s)-1]
}

// lowerHex returns the percent-encoded s with lower-case hex digits, the
// spelling some encoders use instead of Go's upper case.
func lowerHex(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = toLower(b[i+1])
			b[i+2] = toLower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
