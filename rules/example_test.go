package rules_test

import (
	"errors"
	"fmt"

	"keyhole/rules"
)

func ExampleParse() {
	s, err := rules.Parse("keyhole.yaml", []byte(`
secrets:
  STRIPE_LIVE:
    source: env:STRIPE_SECRET_KEY
    hosts: [api.stripe.com]
egress:
  default: deny
  allow: [pypi.org]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Summary())
	fmt.Println(s.CheckEgress("api.stripe.com", 443, 443) == rules.EgressAllowed)
	fmt.Println(s.CheckEgress("evil.example", 443, 443) == rules.EgressNotAllowed)
	// Output:
	// keyhole.yaml: ok: 1 secret, 0 agents, egress default deny (1 allow, 0 deny), 0 pins
	// true
	// true
}

func ExampleErrors() {
	_, err := rules.Parse("keyhole.yaml", []byte(`
secrets:
  STRIPE_LIVE:
    source: env:STRIPE_SECRET_KEY
    hosts: []
egress:
  default: maybe
`))
	var list rules.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Printf("line %d, %s: %s\n", e.Line, e.Field, e.Msg)
		}
	}
	// Output:
	// line 5, secrets.STRIPE_LIVE.hosts: must not be empty (a secret must name the hosts it may be sent to)
	// line 7, egress.default: must be allow or deny, got "maybe"
}
