package proxy

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"keyhole/agentauth"
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
type caller struct {
	inject.Caller
	tokenID string
	grant   *tokens.Grant // nil unless a minted token was used

	// The credentials presented, kept to re-check them on every request in
	// a tunnel: a reload may remove the agent, a token may expire or be
	// revoked while the tunnel is open.
	user, pass string
	checked    *policy // the policy the credentials were last checked under
}

// authenticate identifies the client of r under pol. Without an agents
// section every client is the anonymous agent.
func (p *Proxy) authenticate(r *http.Request, pol *policy, now time.Time) (*caller, *inject.Refusal) {
	c := &caller{Caller: inject.Caller{Agent: rules.AnonymousAgent}, checked: pol}
	if !pol.set.HasAgents() {
		return c, nil
	}
	user, pass, ok := parseProxyBasic(r.Header.Get("Proxy-Authorization"))
	if !ok {
		return nil, inject.Refuse(inject.ProxyAuthRequired, "", "",
			"proxy authentication required: send Proxy-Authorization: Basic base64(agent:token), for example HTTPS_PROXY=http://AGENT:TOKEN@host:port")
	}
	c.user, c.pass = user, pass
	if ref := p.verify(c, pol, now); ref != nil {
		return nil, ref
	}
	return c, nil
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

// verify checks c.user and c.pass against pol and fills in who c is.
func (p *Proxy) verify(c *caller, pol *policy, now time.Time) *inject.Refusal {
	id, err := p.verifier().Verify(pol.set, c.user, c.pass, now)
	c.checked = pol
	if id.Agent != nil {
		c.Agent, c.Rule = id.Agent.Name, id.Agent
	}
	c.Token, c.grant, c.tokenID = nil, nil, ""
	if id.Grant != nil {
		c.grant, c.Token, c.tokenID = id.Grant, id.Grant, id.Grant.ID
	}
	return authRefusal(c.Agent, err)
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
