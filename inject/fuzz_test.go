package inject

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"keyhole/rules"
)

// fuzzHosts are the destinations FuzzApply picks from: some named by a
// secret, some by a wildcard's apex, some by none.
var fuzzHosts = []string{
	"api.stripe.com", "api.github.com", "github.com", "api.openai.com",
	"legacy.example.com", "db.example.com", "evil.example", "127.0.0.1", "::1",
}

// FuzzApply feeds Apply arbitrary header names and values toward several
// destinations and checks that it never panics, never modifies its input,
// never sends a placeholder of a known secret, and never sends a secret
// value (raw or inside a Basic credential) that the input did not hold,
// unless it injected that secret toward a destination the secret allows.
// A refusal never holds a value.
func FuzzApply(f *testing.F) {
	f.Add("Authorization", "Bearer <<STRIPE_LIVE>>", "Accept", "*/*", uint8(0), uint16(0), "POST", "/v1/charges", false, uint8(0))
	f.Add("X-Api-Key", "<<OPENAI>>", "X-Nested", "<<NESTED>>", uint8(3), uint16(443), "GET", "/", false, uint8(2))
	f.Add("Authorization", "Basic PDxEQl9VU0VSPj46PDxEQl9QQVNTPj4=", "Cookie", "a=<<DB_PASS>>", uint8(5), uint16(0), "GET", "/", false, uint8(0))
	f.Add("X-Token", "<<PLAIN>><<PLAIN>>", "x-token", "<<<<PLAIN>>>>", uint8(4), uint16(80), "TRACE", "/x", true, uint8(0))
	f.Add("Authorization", "token <<GITHUB>>", "X-A", "<<MISSING>>", uint8(1), uint16(8443), "DELETE", "/v1/%2e%2e/x", false, uint8(3))
	set := newTestSet(f)
	callers := []Caller{
		{Agent: "anonymous"},
		{Agent: "billing", Rule: set.Agents["billing"]},
		{Agent: "ci", Rule: set.Agents["ci"]},
		{Agent: "ci", Rule: set.Agents["ci"], Token: grant{"OPENAI"}},
	}
	f.Fuzz(func(t *testing.T, name1, value1, name2, value2 string, host uint8, port uint16, method, path string, plain bool, who uint8) {
		tgt := Target{Scheme: "https", Host: fuzzHosts[int(host)%len(fuzzHosts)], Port: int(port), Method: method, Path: path}
		if plain {
			tgt.Scheme = "http"
		}
		if port == 0 {
			tgt.Port = tgt.DefaultPort()
		}
		tgt.EscapedPath = (&url.URL{Path: path}).EscapedPath()
		c := callers[int(who)%len(callers)]
		h := http.Header{}
		h[name1] = append(h[name1], value1)
		h[name2] = append(h[name2], value2)
		before := h.Clone()

		res, ref := Apply(set, c, tgt, h)
		assertHeaderEqual(t, h, before)
		if ref != nil {
			if !strings.HasPrefix(ref.Message, "keyhole: ") {
				t.Fatalf("got message %q, want the prefix %q", ref.Message, "keyhole: ")
			}
			if s := ref.Status(); s != 400 && s != 403 && s != 502 {
				t.Fatalf("got status %d for %s, want 400, 403 or 502", s, ref.Reason)
			}
			assertNoValue(t, "refusal message", ref.Message)
			return
		}
		if res.Secrets == nil {
			assertHeaderEqual(t, res.Header, h)
			return
		}
		for _, name := range res.Secrets {
			checkInjected(t, set, c, tgt, name)
		}
		in, out := exposure(h), exposure(res.Header)
		if !slices.Contains(res.Secrets, "NESTED") {
			for _, p := range FindPlaceholders(out) {
				if _, known := testValues[p.Name]; known {
					t.Fatalf("sent placeholder %s", p.Name)
				}
			}
		}
		for name, v := range testValues {
			if !slices.Contains(res.Secrets, name) && strings.Count(out, v) > strings.Count(in, v) {
				t.Fatalf("sent secret %s, which was not injected, at offset %d", name, strings.Index(out, v))
			}
		}
	})
}

// checkInjected fails unless the secret called name may go to tgt.
func checkInjected(t *testing.T, set *rules.Set, c Caller, tgt Target, name string) {
	t.Helper()
	sec := set.Secrets[name]
	switch {
	case sec == nil:
		t.Fatalf("injected unknown secret %s", name)
	case !sec.AllowsHost(tgt.Host, tgt.Port, tgt.DefaultPort()):
		t.Fatalf("injected secret %s toward %s, which it does not allow", name, tgt.HostPort())
	case c.Rule != nil && !c.Rule.MayUse(name), c.Token != nil && !c.Token.AllowsSecret(name):
		t.Fatalf("injected secret %s for agent %s, who may not use it", name, c.Agent)
	case tgt.Scheme != "https" && !sec.AllowPlaintext:
		t.Fatalf("injected secret %s over %s", name, tgt.Scheme)
	case strings.EqualFold(tgt.Method, "TRACE"), strings.EqualFold(tgt.Method, "TRACK"):
		t.Fatalf("injected secret %s into a %s request", name, tgt.Method)
	case !sec.AllowsMethod(tgt.Method) || !sec.AllowsPath(tgt.Path):
		t.Fatalf("injected secret %s with a method or path it does not allow", name)
	}
}

// exposure returns everything an upstream could read in h: each value, and
// the decoded credential of each Basic Authorization value, one a line.
// Every test value starts with its only '~' and holds no newline, so a value
// that the text holds more often than the request did was injected.
func exposure(h http.Header) string {
	var b strings.Builder
	for name, vs := range h {
		for _, v := range vs {
			b.WriteString(v)
			b.WriteByte('\n')
			if name != "Authorization" {
				continue
			}
			if dec, ok := decodeBasic(v); ok {
				b.WriteString(dec)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}
