package tokens

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAttenuateErrors(t *testing.T) {
	tok := mustMint(t, testKey(1), "task-1", wide)
	cases := []struct {
		name  string
		token string
		r     Restriction
		now   time.Time
		want  error // nil: any error
	}{
		{name: "not a token", token: "static", now: now, want: ErrMalformed},
		{name: "unknown caveat", token: extend(t, tok, appendCaveat(nil, 42, nil)), now: now, want: ErrInvalid},
		{name: "expired parent", token: tok, now: now.Add(time.Hour), want: ErrExpired},
		{name: "too many caveats", token: extend(t, tok, slices.Repeat([][]byte{appendCaveat(nil, kindID, []byte("i"))}, MaxCaveats-len(mustRaw(t, tok).caveats))...), now: now},
		{name: "negative ttl", token: tok, r: Restriction{TTL: -1}, now: now},
		{name: "empty hosts", token: tok, r: Restriction{Hosts: []string{}}, now: now},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			child, err := Attenuate(tc.token, tc.r, tc.now)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got child of %d bytes and error %v, want an error (%v)", len(child), err, tc.want)
			}
			checkNoToken(t, err.Error(), tc.token)
		})
	}
}

func TestAttenuate(t *testing.T) {
	key := testKey(1)
	parent := mustMint(t, key, "task-1", wide)
	parentExpires := now.Add(15 * time.Minute)
	cases := []struct {
		name    string
		r       Restriction
		allow   []string // probes: secret:NAME, method:M, host:NAME:PORT
		deny    []string
		expires time.Time
	}{
		{name: "no restriction keeps the parent's", expires: parentExpires,
			allow: []string{"secret:STRIPE_LIVE", "secret:OPENAI_KEY", "method:GET", "method:POST", "host:api.stripe.com:443", "host:x.github.com:443"},
			deny:  []string{"secret:OTHER", "method:PUT", "host:github.com:443", "host:api.stripe.com:8443"}},
		{name: "narrower secrets", r: Restriction{Secrets: []string{"STRIPE_LIVE"}}, expires: parentExpires,
			allow: []string{"secret:STRIPE_LIVE"}, deny: []string{"secret:GITHUB_TOKEN", "secret:OPENAI_KEY"}},
		{name: "cannot widen secrets", r: Restriction{Secrets: []string{"GITHUB_TOKEN", "AWS_KEY"}}, expires: parentExpires,
			allow: []string{"secret:GITHUB_TOKEN"}, deny: []string{"secret:AWS_KEY", "secret:STRIPE_LIVE"}},
		{name: "disjoint secrets allow none", r: Restriction{Secrets: []string{"AWS_KEY"}}, expires: parentExpires,
			deny: []string{"secret:AWS_KEY", "secret:STRIPE_LIVE", "secret:GITHUB_TOKEN"}},
		{name: "narrower hosts", r: Restriction{Hosts: []string{"API.Stripe.com."}}, expires: parentExpires,
			allow: []string{"host:api.stripe.com:443"}, deny: []string{"host:api.github.com:443"}},
		{name: "cannot widen hosts", r: Restriction{Hosts: []string{"evil.test", "*.stripe.com"}}, expires: parentExpires,
			allow: []string{"host:api.stripe.com:443"}, deny: []string{"host:evil.test:443", "host:files.stripe.com:443", "host:api.github.com:443"}},
		{name: "narrower methods", r: Restriction{Methods: []string{"get"}}, expires: parentExpires,
			allow: []string{"method:GET"}, deny: []string{"method:POST", "method:get"}},
		{name: "cannot widen methods", r: Restriction{Methods: []string{"DELETE", "POST"}}, expires: parentExpires,
			allow: []string{"method:POST"}, deny: []string{"method:DELETE", "method:GET"}},
		{name: "shorter ttl", r: Restriction{TTL: time.Minute}, expires: now.Add(time.Minute)},
		{name: "cannot extend ttl", r: Restriction{TTL: 24 * time.Hour}, expires: parentExpires},
		{name: "ttl rounds down to a second", r: Restriction{TTL: 1500 * time.Millisecond}, expires: now.Add(time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			child, err := Attenuate(parent, tc.r, now)
			if err != nil {
				t.Fatalf("Attenuate: %v", err)
			}
			g, err := Verify(key, child, now)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, p := range tc.allow {
				if !probe(t, g, p) {
					t.Errorf("%s: got refused, want allowed", p)
				}
			}
			for _, p := range tc.deny {
				if probe(t, g, p) {
					t.Errorf("%s: got allowed, want refused", p)
				}
			}
			if !g.Expires.Equal(tc.expires) {
				t.Errorf("got expiry %v, want %v", g.Expires, tc.expires)
			}
			if len(g.IDs) != 2 || g.IDs[0] != "task-1" || g.ID != g.IDs[1] || checkID(g.ID) != nil {
				t.Errorf("got ids %v and id %q, want [task-1 CHILD] with a valid fresh CHILD", g.IDs, g.ID)
			}
		})
	}
}

// probe answers one "kind:value" question about g.
func probe(t *testing.T, g *Grant, p string) bool {
	t.Helper()
	kind, v, _ := strings.Cut(p, ":")
	switch kind {
	case "secret":
		return g.AllowsSecret(v)
	case "method":
		return g.AllowsMethod(v)
	case "host":
		host, port, _ := strings.Cut(v, ":")
		n := 0
		for _, c := range port {
			n = n*10 + int(c-'0')
		}
		return g.AllowsHost(host, n, 443)
	}
	t.Fatalf("bad probe %q", p)
	return false
}

func TestGrantSecrets(t *testing.T) {
	key := testKey(1)
	parent := mustMint(t, key, "p", wide)
	cases := []struct {
		name           string
		token          string
		want           []string
		wantRestricted bool
	}{
		{name: "restricted", token: parent, want: []string{"GITHUB_TOKEN", "OPENAI_KEY", "STRIPE_LIVE"}, wantRestricted: true},
		{name: "unrestricted", token: mustMint(t, key, "u", Restriction{TTL: time.Minute})},
		{name: "intersection", token: mustAttenuate(t, parent, "c", Restriction{Secrets: []string{"STRIPE_LIVE", "OTHER", "OPENAI_KEY"}}), want: []string{"OPENAI_KEY", "STRIPE_LIVE"}, wantRestricted: true},
		{name: "empty intersection", token: mustAttenuate(t, parent, "c", Restriction{Secrets: []string{"OTHER"}}), want: []string{}, wantRestricted: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Verify(key, tc.token, now)
			if err != nil {
				t.Fatal(err)
			}
			got, restricted := g.Secrets()
			if !slices.Equal(got, tc.want) || restricted != tc.wantRestricted {
				t.Fatalf("got %v, %v, want %v, %v", got, restricted, tc.want, tc.wantRestricted)
			}
		})
	}
}

func TestNilGrantAllowsNothing(t *testing.T) {
	var g *Grant
	if g.AllowsSecret("A") || g.AllowsMethod("GET") || g.AllowsHost("a.com", 443, 443) || !g.Expired(now) {
		t.Fatal("got a nil grant allowing something, want nothing")
	}
	if names, restricted := g.Secrets(); names != nil || !restricted {
		t.Fatalf("got %v, %v, want nil, true", names, restricted)
	}
}
