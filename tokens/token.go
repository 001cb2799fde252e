// Package tokens mints, narrows and verifies keyhole's per-task agent tokens.
//
// An agent authenticates to the proxy with Proxy-Authorization: Basic
// base64(NAME:TOKEN). TOKEN is either the agent's static token from the rules
// file or a minted token from this package: short-lived, narrowed to some
// secrets, hosts and methods, and verifiable by any proxy that holds the
// [Key].
//
// Tokens are macaroons in miniature. A token is a list of caveats followed by
// a tag, an HMAC-SHA256 chain over the caveats: the first link is keyed by the
// Key, and every later link by the previous tag. So anyone holding a token can
// append a caveat and replace the tag by HMAC(tag, caveat) — that is
// [Attenuate], which needs no key — but nobody without the key can remove or
// alter a caveat, since that would mean inverting HMAC. Every caveat must hold
// for a token to be honoured, so a child token can never do more than its
// parent. [Verify] recomputes the chain with the key and compares tags in
// constant time (see "Macaroons: Cookies with Contextual Caveats for
// Decentralized Authorization in the Cloud", Birgisson et al., NDSS 2014).
//
// The first caveat binds the agent's name and the root id; each attenuation
// adds its own id, so that revoking an id (see [Revoke]) ends that token and
// every token attenuated from it. Decoding fails closed: an unknown caveat, a
// second agent caveat, an empty list, a bad length, stray bytes, more than
// [MaxCaveats] caveats or a token longer than [MaxTokenLen] make the token
// invalid.
//
// A token is [Prefix] followed by unpadded base64url, so it is safe as the
// password of a URL's userinfo (http://NAME:TOKEN@host:port) without
// escaping. Keys, tokens and tags never appear in an error or a log value;
// token ids and agent names may.
package tokens

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors that Verify, Attenuate and Inspect wrap. ErrMalformed wraps
// ErrInvalid, so errors.Is(err, ErrInvalid) holds for every token that is
// not honoured except an expired one.
var (
	// ErrInvalid means the token's tag does not match its caveats, or a
	// caveat is unknown or ill-formed.
	ErrInvalid = errors.New("invalid token")
	// ErrMalformed means the text is not a token at all: wrong prefix, bad
	// base64url, bad framing, or too long.
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalid)
	// ErrExpired means the token is authentic but one of its expiry caveats
	// has passed.
	ErrExpired = errors.New("token expired")
)

// Restriction is what Mint or Attenuate adds to a token. Each field narrows
// the token independently; a zero field adds nothing. A non-nil empty list is
// an error: it would otherwise be easy to mistake for "no restriction".
type Restriction struct {
	// Secrets lists the secret names the token may use; nil: no restriction
	// added.
	Secrets []string
	// Hosts lists host patterns (see rules.ParseHostPattern) the token may
	// reach; nil: no restriction added.
	Hosts []string
	// Methods lists the HTTP methods the token may use, upper-cased here;
	// nil: no restriction added.
	Methods []string
	// TTL is how long the token lives from now. The expiry is kept in whole
	// seconds and rounded down, so the token never outlives TTL (it lives
	// more than TTL-1s); a TTL under 1s is an error. 0: no expiry added.
	// Mint requires TTL > 0.
	TTL time.Duration
}

// caveats returns the encoded caveats that r adds at now.
func (r Restriction) caveats(now time.Time) ([][]byte, error) {
	var out [][]byte
	if r.TTL < 0 {
		return nil, fmt.Errorf("ttl %v is negative", r.TTL)
	}
	if r.TTL > 0 && r.TTL < time.Second {
		return nil, fmt.Errorf("ttl %v is shorter than 1s, the unit of a token's expiry", r.TTL)
	}
	if r.TTL > 0 {
		// Rounded down, so that the token never outlives the TTL: it
		// lives more than TTL-1s and at most TTL.
		sec := now.Add(r.TTL).Unix()
		if sec <= 0 || sec > maxUnix {
			return nil, fmt.Errorf("ttl %v: expiry out of range", r.TTL)
		}
		out = append(out, appendCaveat(nil, kindExpires, binary.AppendUvarint(nil, uint64(sec))))
	}
	methods := r.Methods
	if methods != nil {
		methods = make([]string, len(r.Methods))
		for i, m := range r.Methods {
			methods[i] = strings.ToUpper(m)
		}
	}
	lists := []struct {
		kind  kind
		items []string
	}{{kindSecrets, r.Secrets}, {kindHosts, r.Hosts}, {kindMethods, methods}}
	for _, l := range lists {
		if l.items == nil {
			continue
		}
		if len(l.items) == 0 {
			return nil, fmt.Errorf("%s: empty list; leave it nil for no restriction", l.kind)
		}
		items := make([]string, len(l.items))
		for i, s := range l.items {
			var err error
			if items[i], err = checkItem(l.kind, s); err != nil {
				return nil, fmt.Errorf("%s[%d]: %w", l.kind, i, err)
			}
		}
		out = append(out, appendCaveat(nil, l.kind, appendList(nil, uniqueSorted(items))))
	}
	return out, nil
}

// Mint returns a new token for agent, narrowed by r, whose expiry is
// now+r.TTL; r.TTL must be positive. id names the token for revocation: 1 to
// 64 bytes of [A-Za-z0-9._-] starting with a letter or digit; "" picks a
// random 16-character id. The id may be read back with Inspect.
func Mint(key Key, agent, id string, r Restriction, now time.Time) (string, error) {
	if key.IsZero() {
		return "", errors.New("mint token: zero key")
	}
	if err := checkAgent(agent); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if id == "" {
		var err error
		if id, err = newID(); err != nil {
			return "", fmt.Errorf("mint token: %w", err)
		}
	} else if err := checkID(id); err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	if r.TTL <= 0 {
		return "", fmt.Errorf("mint token %s: ttl must be positive", id)
	}
	rest, err := r.caveats(now)
	if err != nil {
		return "", fmt.Errorf("mint token %s: %w", id, err)
	}
	caveats := append([][]byte{appendCaveat(nil, kindAgent, appendList(nil, []string{agent, id}))}, rest...)
	tag := key.b[:]
	for _, c := range caveats {
		tag = chain(tag, c)
	}
	tok := encode(caveats, tag)
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("mint token %s: longer than %d bytes", id, MaxTokenLen)
	}
	return tok, nil
}

// Attenuate returns a child of token narrowed by r, without the key: it
// appends a fresh random id and r's caveats, and extends the tag. The child
// is honoured only where the parent and r both allow, and expires no later
// than the parent, whatever r.TTL says. Attenuate checks the token's form
// but cannot check its tag; it refuses a parent that has already expired.
func Attenuate(token string, r Restriction, now time.Time) (string, error) {
	id, err := newID()
	if err != nil {
		return "", fmt.Errorf("attenuate token: %w", err)
	}
	return attenuate(token, id, r, now)
}

func attenuate(token, id string, r Restriction, now time.Time) (string, error) {
	t, err := decode(token)
	if err != nil {
		return "", fmt.Errorf("attenuate token: %w", err)
	}
	cs, err := interpret(t.caveats)
	if err != nil {
		return "", fmt.Errorf("attenuate token: %w", err)
	}
	s := summarize(cs)
	if !s.expires.IsZero() && !now.Before(s.expires) {
		return "", fmt.Errorf("attenuate token %s: %w at %s", s.ids[len(s.ids)-1], ErrExpired, s.expires.Format(time.RFC3339))
	}
	rest, err := r.caveats(now)
	if err != nil {
		return "", fmt.Errorf("attenuate token %s: %w", s.ids[len(s.ids)-1], err)
	}
	added := append([][]byte{appendCaveat(nil, kindID, []byte(id))}, rest...)
	tag := t.tag
	for _, c := range added {
		tag = chain(tag, c)
	}
	if n := len(t.caveats) + len(added); n > MaxCaveats {
		return "", fmt.Errorf("attenuate token %s: %d caveats, more than %d", s.ids[len(s.ids)-1], n, MaxCaveats)
	}
	tok := encode(append(t.encodedCaveats(), added...), tag)
	if len(tok) > MaxTokenLen {
		return "", fmt.Errorf("attenuate token %s: longer than %d bytes", s.ids[len(s.ids)-1], MaxTokenLen)
	}
	return tok, nil
}

// Info is what a token says about itself, read without the key: nothing in
// it is verified.
type Info struct {
	// Agent is the agent the token claims to be for.
	Agent string
	// ID is the token's own id, the last in IDs.
	ID string
	// IDs lists the root id, then the id of each attenuation.
	IDs []string
	// Expires is the earliest expiry of all caveats; zero when none sets
	// one.
	Expires time.Time
	// Caveats lists every caveat in order.
	Caveats []Caveat
}

// Caveat is one caveat as Inspect shows it.
type Caveat struct {
	// Kind is "agent", "id", "expires", "secrets", "hosts" or "methods".
	Kind string
	// Values are the agent name and root id for "agent", the id for "id",
	// the time in RFC 3339 (UTC) for "expires", and the list otherwise.
	Values []string
}

// String returns the caveat as "kind=v1,v2".
func (c Caveat) String() string { return c.Kind + "=" + strings.Join(c.Values, ",") }

// Inspect decodes token without verifying it, for display. It fails on a
// token that Verify would refuse for its form (wrapping ErrMalformed or
// ErrInvalid), but a nil error says nothing about the token's authenticity
// or expiry.
func Inspect(token string) (Info, error) {
	t, err := decode(token)
	if err != nil {
		return Info{}, fmt.Errorf("inspect token: %w", err)
	}
	cs, err := interpret(t.caveats)
	if err != nil {
		return Info{}, fmt.Errorf("inspect token: %w", err)
	}
	s := summarize(cs)
	info := Info{Agent: s.agent, ID: s.ids[len(s.ids)-1], IDs: s.ids, Expires: s.expires}
	for _, c := range cs {
		v := c.names
		switch c.kind {
		case kindAgent:
			v = []string{c.agent, c.id}
		case kindID:
			v = []string{c.id}
		case kindExpires:
			v = []string{time.Unix(c.expires, 0).UTC().Format(time.RFC3339)}
		}
		info.Caveats = append(info.Caveats, Caveat{Kind: c.kind.String(), Values: v})
	}
	return info, nil
}

// LooksLikeToken reports whether s has the form of a minted token (it starts
// with Prefix), so that a proxy can tell minted tokens from static ones
// cheaply. It checks nothing else.
func LooksLikeToken(s string) bool { return strings.HasPrefix(s, Prefix) }

// newID returns a random 16-character id (80 bits, lower-case base32).
func newID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}
