package inject

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"

	"keyhole/rules"
)

// Bounds on the unknown names Named returns: an agent can write any
// number of made-up placeholders, of any length, into a request.
const (
	maxUnknownNamed   = 16
	maxUnknownNameLen = 64
)

// Named returns the names of the secrets that the placeholders in h name,
// sorted and without duplicates, whether or not any of them could be
// injected: the placeholders of every header value and of the decoded
// user:password of an "Authorization: Basic" credential, as Apply finds
// them. A refused request's audit record lists these, so that an attempt
// to send a secret where it may not go is visible. Every name of a secret
// in set is kept; of the names set does not know, at most 16 of up to 64
// bytes each, so that made-up names can neither bloat the record nor push
// a real one out. It returns nil, without allocating, when h holds no
// placeholder.
func Named(set *rules.Set, h http.Header) []string {
	var names []string
	unknown := 0
	add := func(s string) {
		for _, p := range FindPlaceholders(s) {
			_, known := set.Secrets[p.Name]
			switch {
			case slices.Contains(names, p.Name): // few: the rules' secrets and 16 more
			case known:
				names = append(names, p.Name)
			case len(p.Name) <= maxUnknownNameLen && unknown < maxUnknownNamed:
				names = append(names, p.Name)
				unknown++
			}
		}
	}
	var buf [8]string
	for _, name := range candidateHeaders(buf[:0], h) {
		for _, v := range h[name] {
			if name == "Authorization" && isBasic(v) {
				if raw, err := base64.StdEncoding.DecodeString(strings.TrimLeft(v[6:], " ")); err == nil {
					add(string(raw))
				}
			}
			add(v)
		}
	}
	if names == nil {
		return nil
	}
	slices.Sort(names)
	return names
}
