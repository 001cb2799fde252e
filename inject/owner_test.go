package inject

import (
	"net/http"
	"testing"
	"time"

	"keyhole/rules"
	"keyhole/secret"
)

// A stored secret with an owner is that agent's only, whatever the agents'
// secrets lists say.
func TestOwnedSecretIsItsOwnersOnly(t *testing.T) {
	base, err := rules.Parse("x.yaml", []byte(`
agents:
  alice: {token: env:A, secrets: []}
  bob: {token: env:B, secrets: [CAPT_1]}
secrets:
  OTHER: {source: env:O, hosts: [api.example.com]}
`))
	if err == nil {
		t.Fatal("bob names a secret the rules file lacks: want an error")
	}
	base, err = rules.Parse("x.yaml", []byte(`
agents:
  alice: {token: env:A, secrets: []}
  bob: {token: env:B, secrets: [OTHER]}
secrets:
  OTHER: {source: env:O, hosts: [api.example.com]}
`))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := rules.StoredSecret("CAPT_1", "alice", rules.OriginCaptured, rules.StoredPolicy{Hosts: []string{"api.example.com"}},
		secret.FromString("sk_owned_value_0123456789"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	set := base.WithStored([]*rules.Secret{sec})
	target := Target{Scheme: "https", Host: "api.example.com", Port: 443, Method: "GET", Path: "/", EscapedPath: "/"}
	for _, tc := range []struct {
		agent  string
		reason Reason // "" when allowed
	}{
		{"alice", ""},
		{"bob", AgentNotAllowed},
		{rules.AnonymousAgent, AgentNotAllowed},
	} {
		c := Caller{Agent: tc.agent, Rule: set.Agents[tc.agent]}
		res, ref := Apply(set, c, target, http.Header{"Authorization": {"Bearer <<CAPT_1>>"}})
		switch {
		case tc.reason == "" && (ref != nil || res.Header.Get("Authorization") != "Bearer sk_owned_value_0123456789"):
			t.Errorf("%s: got %v, want the value injected", tc.agent, ref)
		case tc.reason != "" && (ref == nil || ref.Reason != tc.reason):
			t.Errorf("%s: got %v, want %s", tc.agent, ref, tc.reason)
		}
	}
}
