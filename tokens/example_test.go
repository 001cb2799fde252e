package tokens_test

import (
	"errors"
	"fmt"
	"time"

	"keyhole/tokens"
)

// An orchestrator mints a token for its task, then narrows it for a
// sub-agent without the proxy's key; the proxy verifies the child and honours
// only what both allow.
func Example() {
	key, err := tokens.GenerateKey() // a proxy uses tokens.LoadOrCreateKey(stateDir)
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

	parent, err := tokens.Mint(key, "billing", "task-42", tokens.Restriction{
		Secrets: []string{"STRIPE_LIVE", "GITHUB_TOKEN"},
		Hosts:   []string{"api.stripe.com", "api.github.com"},
		TTL:     15 * time.Minute,
	}, now)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The sub-agent may only read from Stripe, for five minutes.
	child, err := tokens.Attenuate(parent, tokens.Restriction{
		Secrets: []string{"STRIPE_LIVE"},
		Methods: []string{"GET"},
		TTL:     5 * time.Minute,
	}, now)
	if err != nil {
		fmt.Println(err)
		return
	}

	g, err := tokens.Verify(key, child, now.Add(time.Minute))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("agent:", g.Agent, "root id:", g.IDs[0], "chain:", len(g.IDs))
	fmt.Println("STRIPE_LIVE:", g.AllowsSecret("STRIPE_LIVE"), "GITHUB_TOKEN:", g.AllowsSecret("GITHUB_TOKEN"))
	fmt.Println("GET:", g.AllowsMethod("GET"), "POST:", g.AllowsMethod("POST"))
	fmt.Println("api.stripe.com:", g.AllowsHost("api.stripe.com", 443, 443), "evil.example:", g.AllowsHost("evil.example", 443, 443))
	fmt.Println("expires:", g.Expires.Format(time.RFC3339))

	_, err = tokens.Verify(key, child, now.Add(10*time.Minute))
	fmt.Println("later:", errors.Is(err, tokens.ErrExpired))
	// Output:
	// agent: billing root id: task-42 chain: 2
	// STRIPE_LIVE: true GITHUB_TOKEN: false
	// GET: true POST: false
	// api.stripe.com: true evil.example: false
	// expires: 2026-11-26T10:35:00Z
	// later: true
}
