package rules

import (
	"fmt"
	"slices"
	"strconv"
)

// Summary returns the one line `keyhole check` prints for a valid file:
// "keyhole.yaml: ok: 3 secrets, 1 agent, egress default allow (2 allow,
// 1 deny), 1 pin", followed by ", N warnings" when there are any.
func (s *Set) Summary() string {
	def := "allow"
	if s.Egress.DefaultDeny {
		def = "deny"
	}
	out := fmt.Sprintf("%s: ok: %s, %s, egress default %s (%d allow, %d deny), %s",
		s.File, count(len(s.Secrets), "secret"), count(len(s.Agents), "agent"),
		def, len(s.Egress.Allow), len(s.Egress.Deny), count(len(s.Resolve), "pin"))
	if len(s.Databases) > 0 {
		out += ", " + count(len(s.Databases), "database")
	}
	if n := s.budgetCount(); n > 0 {
		out += ", " + count(n, "budget")
	}
	if len(s.Captures) > 0 {
		out += ", " + count(len(s.Captures), "capture rule")
	}
	if s.Handoff != nil {
		out += ", handoff to " + count(len(s.Handoff.Recipients), "recipient")
	}
	if len(s.Warnings) > 0 {
		out += ", " + count(len(s.Warnings), "warning")
	}
	return out
}

// count returns "1 thing" or "N things".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// SecretNames returns the names of every secret, sorted.
func (s *Set) SecretNames() []string { return sortedKeys(s.Secrets) }

// AgentNames returns the names of every agent, sorted; it is empty when the
// file has no agents section.
func (s *Set) AgentNames() []string { return sortedKeys(s.Agents) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SourceFiles returns the path of every file: source (of the secrets, the
// agent tokens and every other field the file reads from a source), sorted
// and without duplicates, so that the proxy can watch them and reload when
// a credential rotates.
func (s *Set) SourceFiles() []string {
	var out []string
	add := func(src Source) {
		if f, ok := src.(FileSource); ok {
			out = append(out, f.Path())
		}
	}
	for _, sec := range s.Secrets {
		add(sec.Source)
		for _, src := range sec.KindSources() {
			add(src)
		}
	}
	for _, a := range s.Agents {
		add(a.Token)
	}
	for _, r := range s.pending {
		add(r.src)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// budgetCount returns the number of budgets of every agent.
func (s *Set) budgetCount() int {
	n := 0
	for _, a := range s.Agents {
		n += len(a.Budgets)
	}
	return n
}
