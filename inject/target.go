package inject

import (
	"net/http"
	"strings"
)

// CanonicalPath reports whether t's path means the same to every server:
// no dot or empty segments, no backslashes, no encoded slash, backslash
// or dot (the check a secret's paths rule makes).
func (t Target) CanonicalPath() bool { return canonicalPath(t.Path, t.EscapedPath) }

// OverridesMethod reports whether h has a method-override header
// (X-HTTP-Method-Override and the like, which frameworks act on) naming
// method, in any case.
func OverridesMethod(h http.Header, method string) bool {
	for _, hn := range methodOverrideHeaders {
		for _, v := range h[hn] {
			for m := range strings.SplitSeq(v, ",") {
				if strings.EqualFold(strings.TrimSpace(m), method) {
					return true
				}
			}
		}
	}
	return false
}
