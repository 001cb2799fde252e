package rules

import (
	"fmt"
	"strings"
)

// PathGlob matches a URL path. "*" matches any run of characters, "/"
// included, so "/v1/*" covers every path under /v1/; "?" matches one
// character; every other character matches itself. A glob must start with
// "/".
type PathGlob struct {
	pattern string
}

// ParsePathGlob parses a path glob.
func ParsePathGlob(s string) (PathGlob, error) {
	if !strings.HasPrefix(s, "/") && s != "*" {
		return PathGlob{}, fmt.Errorf("%q: a path glob must start with \"/\"", s)
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c == 0x7f || c == '#' {
			return PathGlob{}, fmt.Errorf("%q: character %q is not allowed in a path glob", s, c)
		}
	}
	if strings.ContainsAny(s, "[]\\") {
		return PathGlob{}, fmt.Errorf("%q: only \"*\" and \"?\" are special in a path glob; \"[\", \"]\" and \"\\\" are not allowed", s)
	}
	return PathGlob{pattern: s}, nil
}

// String returns the glob as written.
func (g PathGlob) String() string { return g.pattern }

// Match reports whether the path p matches the glob.
func (g PathGlob) Match(p string) bool { return globMatch(g.pattern, p) }

// globMatch matches with the classic two-pointer backtracking algorithm:
// linear in practice, never exponential.
func globMatch(pattern, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			pi++
			si++
		case pi < len(pattern) && pattern[pi] == '*':
			if pi == len(pattern)-1 {
				return true // a final "*" takes the rest, the common "/v1/*"
			}
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
