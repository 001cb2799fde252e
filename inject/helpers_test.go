package inject

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"keyhole/rules"
)

// testRules is the rules file of every test. Each secret exercises one kind
// of restriction.
const testRules = `secrets:
  STRIPE_LIVE:
    source: env:KH_TEST_STRIPE
    hosts: [api.stripe.com]
    headers: [Authorization]
    methods: [GET, POST]
    paths: ["/v1/*"]
  GITHUB:
    source: env:KH_TEST_GITHUB
    hosts: ["*.github.com", "api.github.com:8443"]
  OPENAI:
    source: env:KH_TEST_OPENAI
    hosts: [api.openai.com]
    headers: [Authorization, X-Api-Key]
  NESTED:
    source: env:KH_TEST_NESTED
    hosts: [api.openai.com]
  PLAIN:
    source: env:KH_TEST_PLAIN
    hosts: [legacy.example.com]
    allow_plaintext: true
  DB_USER:
    source: env:KH_TEST_DB_USER
    hosts: [db.example.com]
    headers: [Authorization]
  DB_PASS:
    source: env:KH_TEST_DB_PASS
    hosts: [db.example.com]
    headers: [Authorization]
  MISSING:
    source: env:KH_TEST_MISSING
    hosts: [api.stripe.com]

agents:
  billing:
    token: env:KH_TEST_BILLING_TOKEN
    secrets: [STRIPE_LIVE, MISSING]
  ci:
    token: env:KH_TEST_CI_TOKEN
    secrets: [GITHUB, OPENAI]
`

// testValues maps each secret to its value. Every value is 24 bytes long,
// starts with '~' and holds no other '~', so that no concatenation of
// literal text and other values can spell a value (the fuzz targets rely on
// it). NESTED's value holds a placeholder, which must never be swapped again.
var testValues = map[string]string{
	"STRIPE_LIVE": "~stripe-live-0123456789a",
	"GITHUB":      "~github-pat-0123456789ab",
	"OPENAI":      "~openai-key-0123456789ab",
	"NESTED":      "~nested-<<OPENAI>>-01234",
	"PLAIN":       "~plain-text-0123456789ab",
	"DB_USER":     "~db-user-0123456789abcde",
	"DB_PASS":     "~db-pass-0123456789abcde",
}

// testTokens are the agents' static tokens, which no output may hold either.
var testTokens = map[string]string{
	"KH_TEST_BILLING_TOKEN": "billing-token-abcdef0123",
	"KH_TEST_CI_TOKEN":      "ci-token-abcdef0123456789",
}

// newTestSet compiles testRules with the test values in the environment and
// KH_TEST_MISSING unset.
func newTestSet(tb testing.TB) *rules.Set {
	tb.Helper()
	for name, v := range testValues {
		tb.Setenv(envOf(name), v)
	}
	for k, v := range testTokens {
		tb.Setenv(k, v)
	}
	tb.Setenv("KH_TEST_MISSING", "")
	os.Unsetenv("KH_TEST_MISSING")
	set, err := rules.LoadData("testdata/keyhole.yaml", []byte(testRules))
	if err != nil {
		tb.Fatalf("rules.Parse: %v", err)
	}
	return set
}

// envOf returns the variable a test secret is read from.
func envOf(name string) string {
	switch name {
	case "STRIPE_LIVE":
		return "KH_TEST_STRIPE"
	default:
		return "KH_TEST_" + name
	}
}

// assertNoValue fails when s holds a secret value or an agent token, naming
// the secret and offset, never the bytes.
func assertNoValue(tb testing.TB, what, s string) {
	tb.Helper()
	for name, v := range testValues {
		if i := strings.Index(s, v); i >= 0 {
			tb.Errorf("%s contains secret %s at offset %d", what, name, i)
		}
	}
	for name, v := range testTokens {
		if i := strings.Index(s, v); i >= 0 {
			tb.Errorf("%s contains token %s at offset %d", what, name, i)
		}
	}
}

// target returns the Target of a request with method to rawURL, as the
// proxy builds it.
func target(tb testing.TB, method, rawURL string) Target {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatalf("url.Parse(%q): %v", rawURL, err)
	}
	t := Target{Scheme: u.Scheme, Method: method, Path: u.Path, EscapedPath: u.EscapedPath()}
	host, err := rules.CanonicalHost(u.Hostname())
	if err != nil {
		tb.Fatalf("rules.CanonicalHost(%q): %v", u.Hostname(), err)
	}
	t.Host, t.Port = host, t.DefaultPort()
	if p := u.Port(); p != "" {
		if t.Port, err = strconv.Atoi(p); err != nil {
			tb.Fatalf("port of %q: %v", rawURL, err)
		}
	}
	if t.Path == "" {
		t.Path, t.EscapedPath = "/", "/"
	}
	return t
}

// header builds a header from name, value pairs, keeping names as written.
func header(kv ...string) http.Header {
	if len(kv)%2 != 0 {
		panic("header: odd number of arguments")
	}
	h := make(http.Header, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}

// basic returns an "Authorization: Basic" value for user:pass.
func basic(userPass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
}

// decodeBasic returns the decoded user:pass of a Basic value of any case.
func decodeBasic(v string) (string, bool) {
	if !isBasic(v) {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimLeft(v[6:], " "))
	return string(raw), err == nil
}

// swapKnown replaces every placeholder in s that names a test value by it,
// as Apply should.
func swapKnown(s string) string {
	ps := FindPlaceholders(s)
	return swap(s, ps, valuesOf(ps, func(name string) string { return testValues[name] }))
}

// valuesOf returns value(p.Name) for each placeholder, as swap takes them.
func valuesOf(ps []Placeholder, value func(string) string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = value(p.Name)
	}
	return out
}

// grant is a Narrowing that allows the secrets it lists.
type grant []string

func (g grant) AllowsSecret(name string) bool { return slices.Contains(g, name) }

var _ Narrowing = grant(nil)
