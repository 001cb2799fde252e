package rules

import (
	"net/netip"
	"slices"
	"testing"
)

// mustParse parses a rules file held in a test, failing the test on error.
func mustParse(t testing.TB, data string) *Set {
	t.Helper()
	s, err := LoadData("test.yaml", []byte(data))
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	return s
}

func TestCheckEgress(t *testing.T) {
	const secrets = `
secrets:
  STRIPE:
    source: env:KEYHOLE_UNUSED
    hosts: [api.stripe.com, "files.stripe.com:8443"]
resolve:
  pinned.example: 127.0.0.1
  pinned.example:9443: 127.0.0.1
`
	allowDefault := mustParse(t, secrets+`
egress:
  allow: [pypi.org, "*.pythonhosted.org", "git.example:2222"]
  deny: ["*.pastebin.com", "api.stripe.com", "pypi.org"]
`)
	denyDefault := mustParse(t, secrets+`
egress:
  default: deny
  allow: [pypi.org]
  deny: ["*.pastebin.com"]
`)
	tests := []struct {
		name              string
		set               *Set
		host              string
		port, defaultPort int
		want              EgressVerdict
	}{
		{"unnamed host, default allow", allowDefault, "example.com", 443, 443, EgressAllowed},
		{"unnamed host, plain http", allowDefault, "example.com", 80, 80, EgressAllowed},
		{"deny wins over a secret's host", allowDefault, "api.stripe.com", 443, 443, EgressDenied},
		{"deny wins over allow", allowDefault, "pypi.org", 443, 443, EgressDenied},
		{"wildcard deny", allowDefault, "x.pastebin.com", 443, 443, EgressDenied},
		{"wildcard deny spares the apex", allowDefault, "pastebin.com", 443, 443, EgressAllowed},
		{"allow wildcard", allowDefault, "files.pythonhosted.org", 443, 443, EgressAllowed},
		{"non-default port is refused by default", allowDefault, "example.com", 8443, 443, EgressNotAllowed},
		{"non-default port named by allow", allowDefault, "git.example", 2222, 443, EgressAllowed},
		{"non-default port named by a secret", allowDefault, "files.stripe.com", 8443, 443, EgressAllowed},
		{"non-default port named by a pin", allowDefault, "pinned.example", 9443, 443, EgressAllowed},
		{"a pin for every port names no port", allowDefault, "pinned.example", 8443, 443, EgressNotAllowed},
		{"default deny refuses unnamed", denyDefault, "example.com", 443, 443, EgressNotAllowed},
		{"default deny admits allow", denyDefault, "pypi.org", 443, 443, EgressAllowed},
		{"default deny admits a secret's host", denyDefault, "api.stripe.com", 443, 443, EgressAllowed},
		{"default deny, secret host on the wrong port", denyDefault, "api.stripe.com", 8443, 443, EgressNotAllowed},
		{"default deny, pins are not allow entries", denyDefault, "pinned.example", 9443, 443, EgressNotAllowed},
		{"default deny, deny entry", denyDefault, "a.pastebin.com", 443, 443, EgressDenied},
		{"zero Set allows the default port", &Set{}, "example.com", 443, 443, EgressAllowed},
		{"zero Set refuses other ports", &Set{}, "example.com", 22, 443, EgressNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.set.CheckEgress(tc.host, tc.port, tc.defaultPort); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLookupPin(t *testing.T) {
	s := mustParse(t, `
resolve:
  api.stripe.com: 127.0.0.1:8443
  api.stripe.com:80: 127.0.0.2
  API.GitHub.com.: "::1"
  "[2001:db8::1]:443": "[::1]:9443"
`)
	tests := []struct {
		host   string
		port   int
		wantOK bool
		want   netip.AddrPort
	}{
		{"api.stripe.com", 443, true, netip.MustParseAddrPort("127.0.0.1:8443")},
		{"api.stripe.com", 8443, true, netip.MustParseAddrPort("127.0.0.1:8443")},
		{"api.stripe.com", 80, true, netip.MustParseAddrPort("127.0.0.2:80")}, // the exact port wins
		{"api.github.com", 443, true, netip.MustParseAddrPort("[::1]:443")},
		{"2001:db8::1", 443, true, netip.MustParseAddrPort("[::1]:9443")},
		{"2001:db8::1", 80, false, netip.AddrPort{}},
		{"API.stripe.com", 443, false, netip.AddrPort{}}, // hosts must be canonical
		{"stripe.com", 443, false, netip.AddrPort{}},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			pin, ok := s.LookupPin(tc.host, tc.port)
			if ok != tc.wantOK {
				t.Fatalf("got ok %v, want %v", ok, tc.wantOK)
			}
			if ok {
				if got := pin.Target(tc.port); got != tc.want {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestSecretAllows(t *testing.T) {
	s := mustParse(t, `
secrets:
  NARROW:
    source: env:KEYHOLE_UNUSED
    hosts: [api.stripe.com]
    headers: [authorization]
    methods: [post]
    paths: ["/v1/*"]
  WIDE:
    source: env:KEYHOLE_UNUSED2
    hosts: ["*.example.com"]
`)
	narrow, wide := s.Secrets["NARROW"], s.Secrets["WIDE"]
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"host", narrow.AllowsHost("api.stripe.com", 443, 443), true},
		{"other host", narrow.AllowsHost("evil.example", 443, 443), false},
		{"other port", narrow.AllowsHost("api.stripe.com", 8443, 443), false},
		{"header canonical", narrow.AllowsHeader("Authorization"), true},
		{"header any case", narrow.AllowsHeader("AUTHORIZATION"), true},
		{"other header", narrow.AllowsHeader("X-Api-Key"), false},
		{"method", narrow.AllowsMethod("POST"), true},
		{"other method", narrow.AllowsMethod("GET"), false},
		{"path", narrow.AllowsPath("/v1/charges"), true},
		{"other path", narrow.AllowsPath("/v2/charges"), false},
		{"wide: any header", wide.AllowsHeader("X-Anything"), true},
		{"wide: any method", wide.AllowsMethod("DELETE"), true},
		{"wide: any path", wide.AllowsPath("/"), true},
		{"wide: subdomain", wide.AllowsHost("a.example.com", 443, 443), true},
		{"wide: not the apex", wide.AllowsHost("example.com", 443, 443), false},
		{"plaintext off by default", narrow.AllowPlaintext, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	if got, want := narrow.Placeholder(), "<<NARROW>>"; got != want {
		t.Errorf("Placeholder: got %s, want %s", got, want)
	}
	if got, want := narrow.Env, "NARROW"; got != want {
		t.Errorf("Env: got %s, want %s", got, want)
	}
}

func TestAgents(t *testing.T) {
	t.Setenv("KEYHOLE_AGENT_TOKEN", "agent-token-123456")
	s := mustParse(t, `
secrets:
  A: {source: env:KEYHOLE_UNUSED, hosts: [a.example]}
  B: {source: env:KEYHOLE_UNUSED, hosts: [b.example]}
agents:
  zed:
    token: env:KEYHOLE_AGENT_TOKEN
    secrets: [B]
  billing:
    token: env:KEYHOLE_AGENT_TOKEN
`)
	if !s.HasAgents() {
		t.Fatalf("HasAgents: got false, want true")
	}
	if got, want := s.AgentNames(), []string{"billing", "zed"}; !slices.Equal(got, want) {
		t.Errorf("AgentNames: got %v, want %v", got, want)
	}
	if got, want := s.SecretNames(), []string{"A", "B"}; !slices.Equal(got, want) {
		t.Errorf("SecretNames: got %v, want %v", got, want)
	}
	zed, billing := s.Agents["zed"], s.Agents["billing"]
	if !zed.MayUse("B") || zed.MayUse("A") {
		t.Errorf("zed.MayUse: got B %v, A %v, want true, false", zed.MayUse("B"), zed.MayUse("A"))
	}
	if billing.MayUse("A") || billing.Secrets == nil {
		t.Errorf("billing without secrets: got %v, want an empty, non-nil list", billing.Secrets)
	}
	if !zed.CheckToken("agent-token-123456") || zed.CheckToken("agent-token-12345") || zed.CheckToken("") {
		t.Errorf("CheckToken: got a wrong answer")
	}
	if mustParse(t, "{}").HasAgents() {
		t.Errorf("HasAgents without an agents section: got true, want false")
	}
}

// TestHostTable checks that the compiled table answers as a scan of the
// patterns with HostPattern.Match does.
func TestHostTable(t *testing.T) {
	var patterns []HostPattern
	var table hostTable
	for _, s := range []string{"a.example", "a.example:8443", "*.example", "*.b.example:8443", "*.c.b.example",
		"10.0.0.1", "[::1]:8443", "example", "x.a.example", "a.example"} {
		p, err := ParseHostPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		patterns = append(patterns, p)
		table.add(p)
	}
	hosts := []string{"a.example", "x.a.example", "example", "b.example", "q.b.example", "c.b.example", "d.c.b.example",
		"10.0.0.1", "0.0.1", "::1", ".example", "a.example.", "aexample", "xexample", "e", ""}
	for _, host := range hosts {
		for _, port := range []int{443, 80, 8443} {
			for _, def := range []int{443, 80} {
				want := slices.ContainsFunc(patterns, func(p HostPattern) bool { return p.Match(host, port, def) })
				if got := table.match(host, port, def); got != want {
					t.Errorf("match(%q, %d, %d): got %v, want %v", host, port, def, got, want)
				}
			}
		}
	}
	var empty hostTable
	if empty.match("a.example", 443, 443) {
		t.Errorf("empty table: got a match, want none")
	}
}
