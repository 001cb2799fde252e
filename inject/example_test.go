package inject_test

import (
	"fmt"
	"net/http"
	"strings"

	"keyhole/inject"
	"keyhole/rules"
)

// The agent's request holds a placeholder; Apply swaps it for the secret
// toward the host the rules allow, and refuses, naming the secret and never
// its value, toward any other.
func ExampleApply() {
	set, err := rules.Load("testdata/example/keyhole.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	caller := inject.Caller{Agent: rules.AnonymousAgent}
	h := http.Header{"Authorization": {"Bearer <<STRIPE_LIVE>>"}}

	to := inject.Target{Scheme: "https", Host: "api.stripe.com", Port: 443, Method: "POST", Path: "/v1/charges", EscapedPath: "/v1/charges"}
	res, ref := inject.Apply(set, caller, to, h)
	if ref != nil {
		fmt.Println(ref.Message)
		return
	}
	fmt.Println("injected:", res.Secrets)
	fmt.Println("sent a real key:", strings.HasPrefix(res.Header.Get("Authorization"), "Bearer sk_test_"))
	fmt.Println("agent's header kept:", h.Get("Authorization"))

	to.Host = "evil.example"
	_, ref = inject.Apply(set, caller, to, h)
	fmt.Println(ref.Status(), ref.Reason)
	fmt.Println(ref.Message)
	// Output:
	// injected: [STRIPE_LIVE]
	// sent a real key: true
	// agent's header kept: Bearer <<STRIPE_LIVE>>
	// 403 host_not_allowed
	// keyhole: secret STRIPE_LIVE may only be sent to api.stripe.com, not evil.example
}
