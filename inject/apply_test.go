package inject

import (
	"net/http"
	"reflect"
	"slices"
	"testing"
)

func TestTestValues(t *testing.T) {
	for name, v := range testValues {
		if len(v) != 24 || v[0] != '~' || countByte(v, '~') != 1 {
			t.Errorf("value of %s: want 24 bytes starting with the only '~'", name)
		}
	}
}

func countByte(s string, c byte) int {
	n := 0
	for i := range len(s) {
		if s[i] == c {
			n++
		}
	}
	return n
}

func TestApplyAllowed(t *testing.T) {
	set := newTestSet(t)
	v := testValues
	anon := Caller{Agent: "anonymous"}
	tests := []struct {
		name        string
		caller      Caller
		method, url string
		h           http.Header
		want        http.Header
		wantSecrets []string
	}{
		{"bearer", Caller{Agent: "billing", Rule: set.Agents["billing"], Token: grant{"STRIPE_LIVE"}},
			"POST", "https://api.stripe.com/v1/charges",
			header("Authorization", "Bearer <<STRIPE_LIVE>>", "Accept", "*/*"),
			header("Authorization", "Bearer "+v["STRIPE_LIVE"], "Accept", "*/*"),
			[]string{"STRIPE_LIVE"}},
		{"several headers", anon, "GET", "https://api.openai.com/v1/models",
			header("Authorization", "Bearer <<OPENAI>>", "X-Api-Key", "<<OPENAI>>", "X-Extra", "n=<<NESTED>>"),
			header("Authorization", "Bearer "+v["OPENAI"], "X-Api-Key", v["OPENAI"], "X-Extra", "n="+v["NESTED"]),
			[]string{"NESTED", "OPENAI"}},
		{"several values of one header", anon, "GET", "https://api.openai.com/",
			header("X-Api-Key", "<<OPENAI>>", "X-Api-Key", "plain", "X-Api-Key", "a=<<OPENAI>>;b=<<OPENAI>>"),
			header("X-Api-Key", v["OPENAI"], "X-Api-Key", "plain", "X-Api-Key", "a="+v["OPENAI"]+";b="+v["OPENAI"]),
			[]string{"OPENAI"}},
		{"value holding a placeholder is not swapped again", anon, "GET", "https://api.openai.com/",
			header("X-Nested", "<<NESTED>>"),
			header("X-Nested", v["NESTED"]),
			[]string{"NESTED"}},
		{"literal brackets kept", anon, "GET", "https://api.openai.com/",
			header("X-Api-Key", "<<<<OPENAI>>>> <<1>> << OPENAI >>"),
			header("X-Api-Key", "<<"+v["OPENAI"]+">> <<1>> << OPENAI >>"),
			[]string{"OPENAI"}},
		{"wildcard subdomain", Caller{Agent: "ci", Rule: set.Agents["ci"]}, "DELETE", "https://api.github.com/repos/x",
			header("Authorization", "token <<GITHUB>>"),
			header("Authorization", "token "+v["GITHUB"]),
			[]string{"GITHUB"}},
		{"explicit port", anon, "GET", "https://api.github.com:8443/",
			header("Authorization", "token <<GITHUB>>"),
			header("Authorization", "token "+v["GITHUB"]),
			[]string{"GITHUB"}},
		{"plaintext allowed", anon, "GET", "http://legacy.example.com/",
			header("X-Token", "<<PLAIN>>"),
			header("X-Token", v["PLAIN"]),
			[]string{"PLAIN"}},
		{"non-canonical header name", anon, "GET", "https://api.openai.com/",
			header("x-api-key", "<<OPENAI>>"),
			header("x-api-key", v["OPENAI"]),
			[]string{"OPENAI"}},
		{"path with parameter", anon, "GET", "https://api.stripe.com/v1/charges;v=2",
			header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			header("Authorization", "Bearer "+v["STRIPE_LIVE"]),
			[]string{"STRIPE_LIVE"}},
		{"placeholders in URL are not swapped", anon, "GET", "https://api.stripe.com/v1/<<STRIPE_LIVE>>",
			header("Accept", "*/*"),
			header("Accept", "*/*"),
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.h.Clone()
			res, ref := Apply(set, tc.caller, target(t, tc.method, tc.url), tc.h)
			if ref != nil {
				t.Fatalf("got refusal %s: %s, want none", ref.Reason, ref.Message)
			}
			assertHeaderEqual(t, res.Header, tc.want)
			assertHeaderEqual(t, tc.h, before)
			if !reflect.DeepEqual(res.Secrets, tc.wantSecrets) {
				t.Errorf("got secrets %v, want %v", res.Secrets, tc.wantSecrets)
			}
			if !slices.IsSorted(res.Secrets) || len(slices.Compact(slices.Clone(res.Secrets))) != len(res.Secrets) {
				t.Errorf("got secrets %v, want them sorted and unique", res.Secrets)
			}
			if res.SwapBack != nil {
				t.Errorf("got %d swap-back pairs, want none", len(res.SwapBack))
			}
			// Swapping again must be harmless: the input is untouched.
			again, ref := Apply(set, tc.caller, target(t, tc.method, tc.url), tc.h)
			if ref != nil {
				t.Fatalf("second Apply: got refusal %s, want none", ref.Reason)
			}
			assertHeaderEqual(t, again.Header, tc.want)
		})
	}
}

// TestApplyNoPlaceholder checks that a request without placeholders is passed
// on as it is: the same header map, no copy, no secrets.
func TestApplyNoPlaceholder(t *testing.T) {
	set := newTestSet(t)
	tests := []struct {
		name string
		h    http.Header
	}{
		{"empty", http.Header{}},
		{"nil", nil},
		{"plain", header("Accept", "*/*", "Authorization", "Bearer sk_live_real_but_not_ours")},
		{"lone brackets", header("X-A", "<<", "X-B", "<<1>>", "X-C", "a<<b")},
		{"basic without placeholders", header("Authorization", basic("alice:hunter2"))},
		{"basic undecodable", header("Authorization", "Basic !!not-base64!!")},
		{"basic in another header", header("X-Auth", basic("<<DB_USER>>:<<DB_PASS>>"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, ref := Apply(set, Caller{Agent: "anonymous"}, target(t, "GET", "https://db.example.com/"), tc.h)
			if ref != nil {
				t.Fatalf("got refusal %s: %s, want none", ref.Reason, ref.Message)
			}
			if reflect.ValueOf(res.Header).Pointer() != reflect.ValueOf(tc.h).Pointer() {
				t.Errorf("got a new header map, want the request's own")
			}
			if res.Secrets != nil || res.SwapBack != nil {
				t.Errorf("got secrets %v and %d swap-back pairs, want none", res.Secrets, len(res.SwapBack))
			}
		})
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		name        string
		t           Target
		wantDefault int
		wantHP      string
	}{
		{"https default", Target{Scheme: "https", Host: "a.example", Port: 443}, 443, "a.example"},
		{"https other", Target{Scheme: "https", Host: "a.example", Port: 8443}, 443, "a.example:8443"},
		{"no port", Target{Scheme: "https", Host: "a.example"}, 443, "a.example"},
		{"http default", Target{Scheme: "http", Host: "a.example", Port: 80}, 80, "a.example"},
		{"http on 443", Target{Scheme: "http", Host: "a.example", Port: 443}, 80, "a.example:443"},
		{"ipv6 default", Target{Scheme: "https", Host: "2001:db8::1", Port: 443}, 443, "[2001:db8::1]"},
		{"ipv6 other", Target{Scheme: "https", Host: "::1", Port: 8443}, 443, "[::1]:8443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.t.DefaultPort(); got != tc.wantDefault {
				t.Errorf("DefaultPort: got %d, want %d", got, tc.wantDefault)
			}
			if got := tc.t.HostPort(); got != tc.wantHP {
				t.Errorf("HostPort: got %q, want %q", got, tc.wantHP)
			}
		})
	}
}
