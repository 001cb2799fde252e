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
	// ErrStateUnavailable is a minted token while the shared state is
	// stale: a revocation could have been missed.
	ErrStateUnavailable = errors.New("the shared state is unavailable")
)

// Verifier checks agent credentials. The zero Verifier accepts static
// tokens only.
type Verifier struct {
	// Key verifies minted tokens; the zero Key refuses every minted token.
	Key tokens.Key
	// Revoked lists revoked token ids; nil means nothing is revoked.
	Revoked *tokens.Revocations
}

// Identity is who credentials name. Without an error it is an
// authenticated agent; with one it names only whom the credentials claimed,
// for the audit record.
type Identity struct {
	// Agent is the agent's rule; nil when the user names no agent.
	Agent *rules.Agent
	// Grant is what the minted token allows; nil for the static token and
	// when the token did not verify.
	Grant *tokens.Grant
	// TokenID and TokenIDs are the minted token's id and its id chain, root
	// first, as the token claims them; empty for the static token.
	TokenID  string
	TokenIDs []string
	// Verified reports whether the credentials' signature (or the static
	// token) held: false means Agent and the token ids are only claimed.
	// An expired or revoked token verified.
	Verified bool
}

// Verify checks that pass is the token of the agent named user under set,
// at now. The error is ErrBadCredentials, ErrExpired, ErrRevoked or
// ErrStateUnavailable; the
// Identity then names whom the credentials claimed (see Identity).
func (v *Verifier) Verify(set *rules.Set, user, pass string, now time.Time) (Identity, error) {
	agent := set.Agents[user]
	id := Identity{Agent: agent}
	if !tokens.LooksLikeToken(pass) {
		if agent == nil || !agent.CheckToken(pass) {
			return id, ErrBadCredentials
		}
		id.Verified = true
		return id, nil
	}
	if agent == nil || v == nil || v.Key.IsZero() {
		return id.claimed(pass), ErrBadCredentials
	}
	g, err := tokens.Verify(v.Key, pass, now)
	switch {
	case errors.Is(err, tokens.ErrExpired):
		id = id.claimed(pass)
		id.Verified = true // the signature held: the ids are the token's own
		return id, ErrExpired
	case err != nil || g.Agent != agent.Name:
		return id.claimed(pass), ErrBadCredentials
	}
	id.Grant, id.TokenID, id.TokenIDs, id.Verified = g, g.ID, g.IDs, true
	return id, v.Live(g, now)
}

// claimed returns id with the token ids that pass claims, read without
// verifying it: only a refused token needs them (a verified one has its
// grant's).
func (id Identity) claimed(pass string) Identity {
	if info, err := tokens.Inspect(pass); err == nil {
		id.TokenID, id.TokenIDs = info.ID, info.IDs
	}
	return id
}

// Live re-checks a minted token's expiry and revocation at now; a nil grant
// (the static token) is always live. While the shared revocations are
// stale a minted token is ErrStateUnavailable (fail closed).
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
	if v != nil && v.Revoked.Unavailable() {
		return ErrStateUnavailable
	}
	return nil
}
