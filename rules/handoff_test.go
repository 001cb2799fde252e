package rules

import (
	"strings"
	"testing"
	"time"
)

const handoffYAML = `secrets:
  STRIPE_KEY_1:
    source: env:X
    hosts: [api.stripe.com]
handoff:
  listen: 0.0.0.0:8443
  base_url: https://keyhole.example.com:8443/
  recipients:
    alice: {webhook: https://hooks.example.com/alice}
    oncall: {webhook: https://hooks.example.com/oncall}
  max_ttl: 2h
agents:
  provisioner:
    token: env:T
    secrets: [STRIPE_KEY_1]
    share: {secrets: ["STRIPE_KEY_*"], to: [alice]}
    intake: {from: [oncall]}
  other:
    token: env:T2
`

func TestHandoffParse(t *testing.T) {
	s, err := Parse("k.yaml", []byte(handoffYAML))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handoff
	if h == nil || h.Listen != "0.0.0.0:8443" || h.BaseURL != "https://keyhole.example.com:8443" || h.MaxTTL != 2*time.Hour {
		t.Fatalf("got %+v", h)
	}
	if got := h.Recipients["alice"]; got == nil || got.Webhook != "https://hooks.example.com/alice" || got.Line != 9 {
		t.Errorf("got recipient %+v", got)
	}
	a := s.Agents["provisioner"]
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"share STRIPE_KEY_1", a.Share.AllowsSecret("STRIPE_KEY_1"), true},
		{"share STRIPE_KEY_", a.Share.AllowsSecret("STRIPE_KEY_"), true},
		{"share STRIPE_ADMIN", a.Share.AllowsSecret("STRIPE_ADMIN"), false},
		{"share to alice", a.Share.AllowsRecipient("alice"), true},
		{"share to oncall", a.Share.AllowsRecipient("oncall"), false},
		{"intake from oncall", a.Intake.AllowsRecipient("oncall"), true},
		{"intake from alice", a.Intake.AllowsRecipient("alice"), false},
		{"other shares nothing", s.Agents["other"].Share.AllowsSecret("STRIPE_KEY_1"), false},
		{"other asks nobody", s.Agents["other"].Intake.AllowsRecipient("oncall"), false},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !strings.Contains(s.Summary(), "handoff to 2 recipients") {
		t.Errorf("summary %q does not count the recipients", s.Summary())
	}
	minimal, err := Parse("k.yaml", []byte("handoff:\n  listen: :8443\n  base_url: https://k.example\n  recipients: {a: {webhook: \"https://h.example/x\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if minimal.Handoff.MaxTTL != DefaultMaxTTL {
		t.Errorf("got max_ttl %v, want %v", minimal.Handoff.MaxTTL, DefaultMaxTTL)
	}
}

func TestHandoffErrors(t *testing.T) {
	const head = "handoff:\n  listen: 0.0.0.0:8443\n  base_url: https://k.example\n  recipients:\n    alice: {webhook: \"https://h.example/a\"}\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"share without handoff", "agents:\n  a:\n    token: env:T\n    share: {secrets: [X], to: [alice]}\n",
			"k.yaml:4: agents.a.share: needs a handoff section"},
		{"intake without handoff", "agents:\n  a:\n    token: env:T\n    intake: {from: [alice]}\n",
			"k.yaml:4: agents.a.intake: needs a handoff section"},
		{"unknown recipient", head + "agents:\n  a:\n    token: env:T\n    share: {secrets: [X], to: [bob]}\n",
			"k.yaml:9: agents.a.share.to[0]: recipient bob is not defined in handoff.recipients"},
		{"unknown intake recipient", head + "agents:\n  a:\n    token: env:T\n    intake: {from: [bob]}\n",
			"k.yaml:9: agents.a.intake.from[0]: recipient bob is not defined"},
		{"bad glob", head + "agents:\n  a:\n    token: env:T\n    share: {secrets: [\"a.b\"], to: [alice]}\n",
			"agents.a.share.secrets[0]: not a glob of secret names"},
		{"share needs to", head + "agents:\n  a:\n    token: env:T\n    share: {secrets: [X]}\n",
			"k.yaml:9: agents.a.share.to: is required"},
		{"http webhook", "handoff:\n  listen: :1\n  base_url: https://k.example\n  recipients:\n    a: {webhook: \"http://h.example/a\"}\n",
			"k.yaml:5: handoff.recipients.a.webhook: must be an https:// URL"},
		{"http base_url", "handoff:\n  listen: :1\n  base_url: http://k.example\n  recipients:\n    a: {webhook: \"https://h.example/a\"}\n",
			"k.yaml:3: handoff.base_url: must be an https:// URL"},
		{"bad listen", "handoff:\n  listen: k.example\n  base_url: https://k.example\n  recipients:\n    a: {webhook: \"https://h.example/a\"}\n",
			"k.yaml:2: handoff.listen: want host:port"},
		{"no recipients", "handoff:\n  listen: :1\n  base_url: https://k.example\n  recipients: {}\n",
			"k.yaml:4: handoff.recipients: must name at least one recipient"},
		{"max_ttl too long", head + "  max_ttl: 1000h\n", "k.yaml:6: handoff.max_ttl: must be more than 0 and at most"},
		{"max_ttl not a duration", head + "  max_ttl: soon\n", "k.yaml:6: handoff.max_ttl: not a duration"},
		{"cert without key", head + "  cert_file: c.pem\n", "k.yaml:6: handoff.key_file: is required with cert_file"},
		{"unknown field", head + "  color: red\n", "k.yaml:6: handoff.color: unknown field"},
		{"webhook missing", "handoff:\n  listen: :1\n  base_url: https://k.example\n  recipients:\n    a: {}\n",
			"k.yaml:5: handoff.recipients.a.webhook: is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("k.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
