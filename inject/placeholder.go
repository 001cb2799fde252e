// Package inject swaps placeholders in request headers for real secrets, and
// decides, before anything is sent, whether a request may go upstream at all.
//
// A placeholder is <<NAME>> with NAME matching [A-Za-z_][A-Za-z0-9_]*. Apply
// looks for placeholders in every request header value, including the decoded
// user:password of an "Authorization: Basic" credential, which it re-encodes
// after the swap. A request is allowed only when every placeholder names a
// secret that exists, that the caller may use, and whose hosts, headers,
// methods, paths and plaintext setting all match the request; otherwise Apply
// returns a *Refusal and the caller must send nothing upstream.
//
// The package works on net/http types and a compiled *rules.Set only, so the
// whole policy is testable without a proxy.
package inject

import "strings"

// Placeholder is one <<NAME>> occurrence in a string.
type Placeholder struct {
	Name       string
	Start, End int // byte offsets of "<<" and just past ">>"
}

// maxPlaceholders bounds the placeholders one header value may hold; a value
// with more is refused rather than scanned without end.
const maxPlaceholders = 64

// FindPlaceholders returns the placeholders in s, left to right, without
// overlap. "<<<<A>>>>" holds one placeholder (<<A>>) inside literal angle
// brackets; "<<A>><<B>>" holds two. A "<<" that does not open a well-formed
// placeholder is literal text. It returns nil when s holds none, without
// allocating.
func FindPlaceholders(s string) []Placeholder { return appendPlaceholders(nil, s) }

// appendPlaceholders appends the placeholders in s to out, as
// FindPlaceholders finds them; the request path passes an array on its
// stack, so that a value with a few placeholders costs no allocation.
func appendPlaceholders(out []Placeholder, s string) []Placeholder {
	for i := 0; ; {
		j := strings.Index(s[i:], "<<")
		if j < 0 {
			return out
		}
		start := i + j
		name, ok := placeholderName(s[start+2:])
		if !ok {
			// "<<<X>>": the placeholder may open one byte later.
			i = start + 1
			continue
		}
		end := start + 2 + len(name) + 2
		out = append(out, Placeholder{Name: name, Start: start, End: end})
		i = end
	}
}

// placeholderName returns the NAME at the start of s if s starts with
// "NAME>>".
func placeholderName(s string) (string, bool) {
	n := 0
	for n < len(s) && isNameByte(s[n], n == 0) {
		n++
	}
	if n == 0 || !strings.HasPrefix(s[n:], ">>") {
		return "", false
	}
	return s[:n], true
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || !first && '0' <= c && c <= '9'
}

// ValidName reports whether name may appear in a placeholder.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i], i == 0) {
			return false
		}
	}
	return true
}

// swap returns s with each placeholder ps[i] replaced by values[i], in a
// single pass: a value that itself contains "<<OTHER>>" is not substituted
// again.
func swap(s string, ps []Placeholder, values []string) string {
	n := len(s)
	for i, p := range ps {
		n += len(values[i]) - (p.End - p.Start)
	}
	var b strings.Builder
	b.Grow(n)
	last := 0
	for i, p := range ps {
		b.WriteString(s[last:p.Start])
		b.WriteString(values[i])
		last = p.End
	}
	b.WriteString(s[last:])
	return b.String()
}
