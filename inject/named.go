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
// maxPlaceholdersPerRequest names.
func Named(h http.Header) []string {
	var names []string
	add := func(s string) {
		for _, p := range FindPlaceholders(s) {
			if len(names) < maxPlaceholdersPerRequest {
				names = append(names, p.Name)
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
