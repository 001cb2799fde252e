package proxy

import (
	"keyhole/rules"
	"keyhole/scrub"
)

// policy is one loaded rules set together with what is compiled from it.
// It is immutable; the proxy swaps whole policies on reload, so a request
// runs start to end on the policy it began with.
type policy struct {
	set   *rules.Set
	scrub *scrub.Replacer // every readable secret value and its forms
	mask  *scrub.Masker   // the same forms, masked at their length (gRPC bodies)
}

func compilePolicy(set *rules.Set) *policy {
	var secrets []scrub.Secret
	for name, s := range set.Secrets {
		if v, err := s.Value(); err == nil {
			secrets = append(secrets, scrub.Secret{Name: name, Value: v})
		}
	}
	return &policy{set: set, scrub: scrub.Compile(secrets), mask: scrub.CompileMask(secrets)}
}
