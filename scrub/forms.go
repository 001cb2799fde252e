package scrub

import (
	"bytes"
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
	return out
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
