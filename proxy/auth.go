package proxy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/tokens"
)

// Tokens verifies minted agent tokens: the key they are signed with and the
// list of revoked token ids.
type Tokens struct {
	Key     tokens.Key
	Revoked *tokens.Revocations // nil: nothing is revoked
}

// caller is an authenticated client, bound to a tunnel or a plain request.
// After a refusal it names whom the credentials claimed, for the audit
// record (see stamp), and allows nothing: checked is nil.
type caller struct {
	inject.Caller
	tokenID    string
	tokenIDs   []string      // the minted token's id chain, root first; shared, never modified
	unverified bool          // the credentials did not verify: Agent and the ids are only claimed
	grant      *tokens.Grant // nil unless a minted token was used

	// The credentials presented, kept to re-check them on every request in
	// a tunnel: a reload may remove the agent, a token may expire or be
	// revoked while the tunnel is open.
	user, pass string
	checked    *policy // the policy the credentials were last checked under
}

// authenticate identifies the client of r under pol. Without an agents
// section every client is the anonymous agent. With a refusal, the caller
// it returns only names whom the credentials claimed, for the audit record.
func (p *Proxy) authenticate(r *http.Request, pol *policy, now time.Time) (*caller, *inject.Refusal) {
	c := &caller{Caller: inject.Caller{Agent: rules.AnonymousAgent}, checked: pol}
	if !pol.set.HasAgents() {
		return c, nil
	}
	user, pass, ok := parseProxyBasic(r.Header.Get("Proxy-Authorization"))
	if !ok {
		c.checked = nil
		return c, inject.Refuse(inject.ProxyAuthRequired, "", "",
			"proxy authentication required: send Proxy-Authorization: Basic base64(agent:token), for example HTTPS_PROXY=http://AGENT:TOKEN@host:port")
	}
	c.user, c.pass = user, pass
	if ref := p.verify(c, pol, now); ref != nil {
		return c, ref
	}
	return c, nil
}

// stamp writes who c is (or claimed to be) into rec. A nil c leaves rec
// as it is.
func (c *caller) stamp(rec *audit.Record) {
	if c != nil {
		rec.Agent, rec.TokenID, rec.TokenIDs, rec.TokenUnverified = c.Agent, c.tokenID, c.tokenIDs, c.unverified
	}
}

// recheck verifies a caller's credentials again for a new request: fully
// when the rules changed since the last check, otherwise only the minted
// token's expiry and revocation.
func (p *Proxy) recheck(pol *policy, c *caller, now time.Time) *inject.Refusal {
	if c.checked == pol {
		return p.checkLive(c, now)
	}
	if !pol.set.HasAgents() {
		*c = caller{Caller: inject.Caller{Agent: rules.AnonymousAgent}, checked: pol}
		return nil
	}
	if c.user == "" {
		return inject.Refuse(inject.ProxyAuthRequired, "", "",
			"proxy authentication is now required: reconnect with Proxy-Authorization: Basic base64(agent:token)")
	}
	return p.verify(c, pol, now)
}

// verify checks c.user and c.pass against pol and fills in who c is. On a
// refusal c allows nothing and is checked again on its next request
// (checked is nil), and it names the agent and token ids the credentials
// claimed, marked unverified unless the token's signature held.
func (p *Proxy) verify(c *caller, pol *policy, now time.Time) *inject.Refusal {
	id, err := p.verifier().Verify(pol.set, c.user, c.pass, now)
	c.Caller = inject.Caller{Agent: rules.AnonymousAgent}
	c.grant, c.checked = nil, nil
	if id.Agent != nil {
		// Only a name from the rules is recorded: the user field may hold
		// anything, a token pasted in the wrong place included.
		c.Agent = id.Agent.Name
	}
	c.tokenID, c.tokenIDs, c.unverified = id.TokenID, id.TokenIDs, !id.Verified
	if err != nil {
		return authRefusal(c.Agent, err)
	}
	c.Rule, c.checked = id.Agent, pol
	if id.Grant != nil {
		c.grant, c.Token = id.Grant, id.Grant
	}
	return nil
}

// checkLive re-checks a minted token's expiry and revocation.
func (p *Proxy) checkLive(c *caller, now time.Time) *inject.Refusal {
	return authRefusal(c.Agent, p.verifier().Live(c.grant, now))
}

// verifier is the proxy's token verifier.
func (p *Proxy) verifier() *agentauth.Verifier {
	if p.tokens == nil {
		return nil
	}
	return &agentauth.Verifier{Key: p.tokens.Key, Revoked: p.tokens.Revoked}
}

// authRefusal maps an agentauth error to its refusal.
func authRefusal(agent string, err error) *inject.Refusal {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agentauth.ErrExpired):
		return inject.Refuse(inject.TokenExpired, "", "",
			"the token of agent %s has expired; ask for a new one", agent)
	case errors.Is(err, agentauth.ErrRevoked):
		return inject.Refuse(inject.TokenRevoked, "", "",
			"the token of agent %s has been revoked", agent)
	case errors.Is(err, agentauth.ErrStateUnavailable):
		return inject.Refuse(inject.StateUnavailable, "", "",
			"the shared state is unreachable, so a revocation of the token of agent %s could have been missed; retry later or use the agent's static token", agent)
	}
	return inject.Refuse(inject.ProxyAuthRequired, "", "",
		"proxy authentication failed: unknown agent or wrong token")
}

// parseProxyBasic decodes "Basic base64(user:pass)".
func parseProxyBasic(v string) (user, pass string, ok bool) {
	scheme, cred, found := strings.Cut(strings.TrimSpace(v), " ")
	if !found || !strings.EqualFold(scheme, "basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", false
	}
	return user, pass, true
}
