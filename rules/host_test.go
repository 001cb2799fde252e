package rules

import "testing"

func TestCanonicalHost(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"api.stripe.com", "api.stripe.com"},
		{"API.Stripe.COM", "api.stripe.com"},
		{"api.stripe.com.", "api.stripe.com"},
		{"under_score.example", "under_score.example"},
		{"localhost", "localhost"},
		{"1e100.net", "1e100.net"},
		{"127.0.0.1", "127.0.0.1"},
		{"::1", "::1"},
		{"[::1]", "::1"},
		{"[2001:DB8::1]", "2001:db8::1"},
		{"::ffff:127.0.0.1", "127.0.0.1"},
		{"[::ffff:10.0.0.1]", "10.0.0.1"},
		{"", ""},
		{".", ""},
		{"api.stripe.com..", ""},
		{".api.stripe.com", ""},
		{"api..stripe.com", ""},
		{"bücher.example", ""},
		{"аpple.com", ""}, // Cyrillic а
		{"user@api.stripe.com", ""},
		{"api.stripe.com@evil.example", ""},
		{"api stripe.com", ""},
		{"api.stripe.com ", ""},
		{"<<STRIPE_LIVE>>", ""},
		{"api.<<X>>.com", ""},
		{"*.example.com", ""},
		{"example.com:443", ""},
		{"[example.com]", ""},
		{"[::1", ""},
		{"::1]", ""},
		{"[127.0.0.1]", ""},
		{"fe80::1%eth0", ""},
		{"[fe80::1%25eth0]", ""},
		{"127.1", ""},
		{"0x7f.0.0.1", ""},
		{"0177.0.0.1", ""},
		{"2130706433", ""},
		{"example.123", ""},
		{"a\x00b", ""},
		{"tab\t.example", ""},
		{string(make([]byte, 254)), ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CanonicalHost(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestCanonicalHostLabelLength(t *testing.T) {
	label := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		return string(b)
	}
	if _, err := CanonicalHost(label(63) + ".example"); err != nil {
		t.Errorf("63-byte label: got %v, want no error", err)
	}
	if _, err := CanonicalHost(label(64) + ".example"); err == nil {
		t.Errorf("64-byte label: got no error, want one")
	}
}

func TestHostPattern(t *testing.T) {
	type probe struct {
		host              string
		port, defaultPort int
		want              bool
	}
	tests := []struct {
		pattern string
		str     string // String(); "" when parsing fails
		probes  []probe
	}{
		{"api.stripe.com", "api.stripe.com", []probe{
			{"api.stripe.com", 443, 443, true},
			{"api.stripe.com", 80, 80, true},
			{"api.stripe.com", 8443, 443, false},
			{"x.api.stripe.com", 443, 443, false},
			{"stripe.com", 443, 443, false},
			{"api.stripe.com.evil.example", 443, 443, false},
		}},
		{"API.Stripe.com.", "api.stripe.com", []probe{
			{"api.stripe.com", 443, 443, true},
		}},
		{"*.example.com", "*.example.com", []probe{
			{"a.example.com", 443, 443, true},
			{"a.b.example.com", 443, 443, true},
			{"example.com", 443, 443, false},
			{"badexample.com", 443, 443, false},
			{".example.com", 443, 443, false}, // an empty first label
			{"a.example.com", 8443, 443, false},
		}},
		{"*.example.com:8443", "*.example.com:8443", []probe{
			{"a.example.com", 8443, 443, true},
			{"a.example.com", 443, 443, false},
			{"a.example.com", 8443, 8443, true},
		}},
		{"api.example.com:443", "api.example.com:443", []probe{
			{"api.example.com", 443, 443, true},
			{"api.example.com", 443, 80, true},
			{"api.example.com", 80, 80, false},
		}},
		{"127.0.0.1:8080", "127.0.0.1:8080", []probe{
			{"127.0.0.1", 8080, 80, true},
			{"127.0.0.1", 80, 80, false},
		}},
		{"::1", "::1", []probe{{"::1", 443, 443, true}}},
		{"[::1]", "::1", []probe{{"::1", 443, 443, true}}},
		{"[::1]:8443", "[::1]:8443", []probe{
			{"::1", 8443, 443, true},
			{"::1", 443, 443, false},
		}},
		{"[2001:db8::A]:443", "[2001:db8::a]:443", []probe{{"2001:db8::a", 443, 443, true}}},
		{"", "", nil},
		{"*", "", nil},
		{"*.", "", nil},
		{"**.example.com", "", nil},
		{"a*.example.com", "", nil},
		{"api.*.com", "", nil},
		{"*.127.0.0.1", "", nil},
		{"*.[::1]", "", nil},
		{"example.com:", "", nil},
		{"example.com:0", "", nil},
		{"example.com:+443", "", nil},
		{"example.com:0443", "", nil},
		{"example.com:65536", "", nil},
		{"example.com:http", "", nil},
		{"example.com:443:1", "", nil},
		{"[::1]:", "", nil},
		{"[::1", "", nil},
		{"user@example.com", "", nil},
		{"https://example.com", "", nil},
		{"example.com/path", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			p, err := ParseHostPattern(tc.pattern)
			if tc.str == "" {
				if err == nil {
					t.Fatalf("got %v, want an error", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %s", err, tc.str)
			}
			if got := p.String(); got != tc.str {
				t.Errorf("String: got %s, want %s", got, tc.str)
			}
			again, err := ParseHostPattern(p.String())
			if err != nil || again != p {
				t.Errorf("reparse of %s: got %v, %v, want the same pattern", p, again, err)
			}
			for _, pr := range tc.probes {
				if got := p.Match(pr.host, pr.port, pr.defaultPort); got != pr.want {
					t.Errorf("Match(%s, %d, %d): got %v, want %v", pr.host, pr.port, pr.defaultPort, got, pr.want)
				}
			}
		})
	}
}

func TestHostPatternParts(t *testing.T) {
	p, err := ParseHostPattern("*.Example.com:8443")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Host(), "*.example.com"; got != want {
		t.Errorf("Host: got %s, want %s", got, want)
	}
	if got, want := p.String(), "*.example.com:8443"; got != want {
		t.Errorf("String: got %s, want %s", got, want)
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want int // 0 for an error
	}{
		{"1", 1}, {"443", 443}, {"65535", 65535},
		{"", 0}, {"0", 0}, {"65536", 0}, {"-1", 0}, {"+1", 0}, {"01", 0}, {"1e3", 0}, {" 1", 0}, {"99999999999999999999", 0},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePort(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Fatalf("got %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %d, %v, want %d", got, err, tc.want)
			}
		})
	}
}
