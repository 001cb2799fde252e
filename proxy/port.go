package proxy

import (
	"keyhole/inject"
	"keyhole/rules"
)

// portRefusal returns the refusal of a destination whose port, not its
// host, is what the rules do not allow: the host would be allowed on its
// scheme's own port (always so under default: allow, which opens only
// that port). It returns nil when the host itself is not allowed.
func portRefusal(set *rules.Set, t inject.Target) *inject.Refusal {
	def := t.DefaultPort()
	if t.Port == def || set.CheckEgress(t.Host, def, def) != rules.EgressAllowed {
		return nil
	}
	return inject.Refuse(inject.EgressDenied, "", t.Host,
		"port %d of %s is not an allowed destination: only port %d is open unless a rule names the port; add %s to a secret's hosts or to egress.allow",
		t.Port, t.Host, def, t.HostPort())
}
