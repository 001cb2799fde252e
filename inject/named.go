package inject

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// Named returns the names of the secrets that the placeholders in h name,
// sorted and without duplicates, whether or not any of them could be
// injected: the placeholders of every header value and of the decoded
// user:password of an "Authorization: Basic" credential, as Apply finds
// them. A refused request's audit record lists these, so that an attempt
// to send a secret where it may not go is visible. It returns nil, without
// allocating, when h holds no placeholder, and at most
// maxPlaceholdersPerRequest names, each cut to maxNamedLen bytes (an agent
// chooses these names: a 64 KiB one must not make a 64 KiB audit line).
func Named(h http.Header) []string {
	var names []string
	add := func(s string) {
		for _, p := range FindPlaceholders(s) {
			if len(names) < maxPlaceholdersPerRequest {
				name := p.Name
				if len(name) > maxNamedLen {
					name = name[:maxNamedLen] + "…"
				}
				names = append(names, name)
			}
		}
	}
	for _, name := range candidateHeaders(h) {
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
	return slices.Compact(names)
}

// maxNamedLen bounds a name that Named returns; a longer one is cut and
// ends in "…". No secret of a valid rules file is near that long.
const maxNamedLen = 128
