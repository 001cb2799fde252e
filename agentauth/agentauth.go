// Package agentauth checks an agent's credentials: its name and a token,
// either the agent's static token from the rules or a minted one (signed
// with keyhole's token key, narrowed by its caveats, expiring, revocable).
//
// The HTTP proxy (Proxy-Authorization) and the PostgreSQL front (the
// startup's user and password) both check credentials here, so an agent is
// the same agent whatever protocol it speaks.
package agentauth

import (
	"errors"
	"time"

	"keyhole/rules"
	"keyhole/tokens"
)

// Sentinel errors of Verify and Live. They name no token.
var (
	// ErrBadCredentials is an unknown agent or a wrong token.
	ErrBadCredentials = errors.New("unknown agent or wrong token")
	// ErrExpired is a minted token past its expiry.
	ErrExpired = errors.New("the token has expired")
	// ErrRevoked is a minted token that was revoked.
	ErrRevoked = errors.New("the token has been revoked")
)

// Verifier checks agent credentials. The zero Verifier accepts static
// tokens only.
type Verifier struct {
	// Key verifies minted tokens; the zero Key refuses every minted token.
	Key tokens.Key
	// Revoked lists revoked token ids; nil means nothing is revoked.
	Revoked *tokens.Revocations
}

// Identity is an authenticated agent.
type Identity struct {
	// Agent is the agent's rule.
	Agent *rules.Agent
	// Grant is what the minted token allows; nil for the static token.
	Grant *tokens.Grant
}

// TokenID returns the minted token's id, or "" for the static token.
func (id Identity) TokenID() string {
	if id.Grant == nil {
		return ""
	}
	return id.Grant.ID
}

// Verify checks that pass is the token of the agent named user under set,
// at now. The error is ErrBadCredentials, ErrExpired or ErrRevoked; the
// Identity names the agent even then when the agent exists (for the
// audit), and the grant of a revoked token.
func (v *Verifier) Verify(set *rules.Set, user, pass string, now time.Time) (Identity, error) {
	agent := set.Agents[user]
	if agent == nil {
		return Identity{}, ErrBadCredentials
	}
	id := Identity{Agent: agent}
	if !tokens.LooksLikeToken(pass) {
		if !agent.CheckToken(pass) {
			return id, ErrBadCredentials
		}
		return id, nil
	}
	if v == nil || v.Key.IsZero() {
		return id, ErrBadCredentials
	}
	g, err := tokens.Verify(v.Key, pass, now)
	switch {
	case errors.Is(err, tokens.ErrExpired):
		return id, ErrExpired
	case err != nil || g.Agent != agent.Name:
		return id, ErrBadCredentials
	}
	id.Grant = g
	return id, v.Live(g, now)
}

// Live re-checks a minted token's expiry and revocation at now; a nil grant
// (the static token) is always live.
func (v *Verifier) Live(g *tokens.Grant, now time.Time) error {
	if g == nil {
		return nil
	}
	if !now.Before(g.Expires) {
		return ErrExpired
	}
	if v != nil && v.Revoked != nil && v.Revoked.Revoked(g) {
		return ErrRevoked
	}
	return nil
}
