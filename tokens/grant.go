package tokens

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"slices"
	"time"

	"keyhole/rules"
)

// Grant is what a verified token allows: the intersection of all its
// caveats. A Grant is immutable (do not modify its fields) and safe for
// concurrent use, so a proxy may cache it keyed by the token text, as long as
// it checks Expired on every use. A nil *Grant allows nothing.
//
// The Grant does not know the rules: the caller must still check that Agent
// is the user name the client presented, and that the agent may use a secret
// at all.
type Grant struct {
	// Agent is the agent the token was minted for.
	Agent string
	// ID is the token's own id, the last in IDs.
	ID string
	// IDs lists the root id first, then each attenuation's id.
	IDs []string
	// Expires is the earliest expiry of all caveats.
	Expires time.Time

	secrets nameSet
	methods nameSet
	hosts   [][]rules.HostPattern // every list must match
}

// Verify checks token with key at now and returns what it allows. It wraps
// ErrMalformed when token is not a token, ErrInvalid when its tag does not
// match (wrong key, altered or removed caveat) or a caveat is unknown or
// ill-formed, and ErrExpired when it is authentic but expired. The error
// names the token's id only once the tag is checked, and never holds the
// token.
func Verify(key Key, token string, now time.Time) (*Grant, error) {
	if key.IsZero() {
		return nil, errors.New("verify token: zero key")
	}
	t, err := decode(token)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	tag := key.b[:]
	for _, c := range t.caveats {
		tag = chain(tag, c.enc)
	}
	if !hmac.Equal(tag, t.tag) {
		return nil, fmt.Errorf("verify token: %w: signature does not match", ErrInvalid)
	}
	cs, err := interpret(t.caveats)
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	g := newGrant(cs)
	if g.Expires.IsZero() {
		return nil, fmt.Errorf("verify token %s: %w: no expiry", g.ID, ErrInvalid)
	}
	if g.Expired(now) {
		return nil, fmt.Errorf("verify token %s: %w at %s", g.ID, ErrExpired, g.Expires.Format(time.RFC3339))
	}
	return g, nil
}

func newGrant(cs []caveat) *Grant {
	s := summarize(cs)
	g := &Grant{Agent: s.agent, ID: s.ids[len(s.ids)-1], IDs: s.ids, Expires: s.expires}
	for _, c := range cs {
		switch c.kind {
		case kindSecrets:
			g.secrets.intersect(c.names)
		case kindMethods:
			g.methods.intersect(c.names)
		case kindHosts:
			g.hosts = append(g.hosts, c.hosts)
		}
	}
	return g
}

// Expired reports whether the grant has expired at now; a nil Grant has.
func (g *Grant) Expired(now time.Time) bool { return g == nil || !now.Before(g.Expires) }

// AllowsSecret reports whether every secrets caveat names the secret.
func (g *Grant) AllowsSecret(name string) bool { return g != nil && g.secrets.allows(name) }

// AllowsMethod reports whether every methods caveat names method. Methods
// are compared exactly, as the rules compare them: "get" is not "GET".
func (g *Grant) AllowsMethod(method string) bool { return g != nil && g.methods.allows(method) }

// AllowsHost reports whether every hosts caveat has a pattern that matches
// host on port (see rules.HostPattern.Match: host must be canonical, and
// defaultPort is the port of the request's scheme).
func (g *Grant) AllowsHost(host string, port, defaultPort int) bool {
	if g == nil {
		return false
	}
	for _, list := range g.hosts {
		if !slices.ContainsFunc(list, func(p rules.HostPattern) bool { return p.Match(host, port, defaultPort) }) {
			return false
		}
	}
	return true
}

// Secrets returns the sorted secret names that every secrets caveat allows,
// and whether any caveat restricts secrets at all; when restricted is false
// names is nil and every secret is allowed. A nil Grant returns nil, true.
func (g *Grant) Secrets() (names []string, restricted bool) {
	if g == nil {
		return nil, true
	}
	return slices.Clone(g.secrets.names), g.secrets.restricted
}

// nameSet is the intersection of the lists of every caveat of one kind.
type nameSet struct {
	restricted bool     // some caveat restricts; else everything is allowed
	names      []string // sorted, unique; meaningful only when restricted
}

func (s *nameSet) intersect(list []string) {
	if !s.restricted {
		s.restricted, s.names = true, uniqueSorted(list)
		return
	}
	s.names = slices.DeleteFunc(s.names, func(n string) bool { return !slices.Contains(list, n) })
}

func (s *nameSet) allows(name string) bool {
	if !s.restricted {
		return true
	}
	_, ok := slices.BinarySearch(s.names, name)
	return ok
}
