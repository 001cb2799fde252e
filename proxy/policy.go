package proxy

import (
	"slices"
	"strings"
	"sync"
	"time"

	"keyhole/budget"
	"keyhole/rules"
	"keyhole/scrub"
)

// maxRetired bounds the values kept for scrubbing after they left the
// rules; beyond it the oldest are dropped first.
const maxRetired = 1024

// policy is one loaded rules set together with what is compiled from it.
// It is immutable; the proxy swaps whole policies on reload, so a request
// runs start to end on the policy it began with.
type policy struct {
	set   *rules.Set      // base with the stored secrets (see RefreshStored)
	base  *rules.Set      // the rules as loaded
	scrub *scrub.Replacer // every readable and retired value and its forms
	mask  *scrub.Masker   // the same forms, masked at their length (gRPC bodies)
	// live are the readable values of set, by name order; retired the
	// values that left the rules within the grace period, oldest first.
	live    []scrub.Secret
	retired []retiredValue
	budgets *budget.Plan // the agents' budgets, compiled
}

// retiredValue is a value that is no longer in the rules (the secret was
// removed, or its source now gives another value) but may still come back
// from an upstream that stored it, so it is scrubbed until until.
type retiredValue struct {
	scrub.Secret
	until time.Time
}

// compilePolicy compiles set. The values of prev that set no longer has
// are retired for grace from now; prev's retired values stay until they
// expire or come back into the rules. prev may be nil.
func compilePolicy(set *rules.Set, prev *policy, now time.Time, grace time.Duration) *policy {
	pol := &policy{set: set, budgets: budget.Compile(set)}
	current := make(map[string]bool, len(set.Secrets))
	for name, s := range set.Secrets {
		if v, err := s.Value(); err == nil && !v.IsZero() {
			pol.live = append(pol.live, scrub.Secret{Name: name, Value: v})
			current[v.Reveal()] = true
		}
		// A kind's own values (client secrets, keys) are live too, so
		// that they retire when they rotate like any other.
		for _, v := range s.KindValues() {
			pol.live = append(pol.live, scrub.Secret{Name: name, Value: v})
			current[v.Reveal()] = true
		}
	}
	// A stable order, so that the first of two secrets that share a form
	// is the same on every load.
	slices.SortFunc(pol.live, func(a, b scrub.Secret) int { return strings.Compare(a.Name, b.Name) })
	if prev != nil {
		pol.retired = retire(prev, current, now, grace)
	}
	all := slices.Clone(pol.live)
	for _, r := range pol.retired {
		all = append(all, r.Secret)
	}
	pol.scrub = scrub.Compile(all)
	pol.mask = scrub.CompileMask(all)
	return pol
}

// retire returns prev's retired values that have not expired, followed by
// prev's live values, each retired for grace from now, leaving out values
// in current and keeping at most maxRetired, the latest. prev's retired
// values never include its live ones, so nothing is listed twice.
func retire(prev *policy, current map[string]bool, now time.Time, grace time.Duration) []retiredValue {
	var out []retiredValue
	for _, r := range prev.retired {
		if r.until.After(now) && !current[r.Value.Reveal()] {
			out = append(out, r)
		}
	}
	for _, s := range prev.live {
		if !current[s.Value.Reveal()] {
			out = append(out, retiredValue{Secret: s, until: now.Add(grace)})
		}
	}
	if len(out) > maxRetired {
		out = slices.Clone(out[len(out)-maxRetired:])
	}
	return out
}

// nextExpiry returns when the first retired value of pol expires.
func (pol *policy) nextExpiry() (time.Time, bool) {
	var first time.Time
	for _, r := range pol.retired {
		if first.IsZero() || r.until.Before(first) {
			first = r.until
		}
	}
	return first, !first.IsZero()
}

// retirement serializes policy swaps and drops retired values when they
// expire, without waiting for a reload.
type retirement struct {
	mu    sync.Mutex // also guards Proxy.stored
	timer *time.Timer
}

// setPolicy compiles set (nil: the rules in force), with the stored
// secrets, on top of the policy in force, swaps it in and arranges a
// recompile for when its first retired value expires.
func (p *Proxy) setPolicy(set *rules.Set) {
	p.retirement.mu.Lock()
	defer p.retirement.mu.Unlock()
	now := time.Now()
	if set == nil {
		set = p.policy.Load().base
	}
	pol := compilePolicy(set.WithStored(p.stored), p.policy.Load(), now, p.cfg.ScrubRetired)
	pol.base = set
	p.policy.Store(pol)
	p.budgets.Retain(pol.budgets)
	if p.retirement.timer != nil {
		p.retirement.timer.Stop()
		p.retirement.timer = nil
	}
	if at, ok := pol.nextExpiry(); ok {
		p.retirement.timer = time.AfterFunc(at.Sub(now), func() {
			p.setPolicy(nil)
		})
	}
}
