package inject

import (
	"net/http"
	"strings"
	"testing"
)

func TestApplyRefusals(t *testing.T) {
	set := newTestSet(t)
	billing := Caller{Agent: "billing", Rule: set.Agents["billing"]}
	ci := Caller{Agent: "ci", Rule: set.Agents["ci"]}
	anon := Caller{Agent: "anonymous"}
	stripe := "https://api.stripe.com/v1/charges"
	tooMany := strings.Repeat("<<GITHUB>>", maxPlaceholders+1)
	spread := make([]string, 0, 10)
	for range 5 {
		spread = append(spread, "X-Spread", strings.Repeat("<<GITHUB>>", maxPlaceholders))
	}
	tests := []struct {
		name       string
		caller     Caller
		method     string
		url        string
		h          http.Header
		want       Reason
		wantSecret string
		wantText   string // a part of the message
	}{
		{"unknown secret", anon, "GET", stripe, header("Authorization", "Bearer <<NOPE>>"),
			UnknownSecret, "NOPE", "no secret named NOPE exists"},
		{"unknown secret long name", anon, "GET", stripe, header("X-Key", "<<"+strings.Repeat("N", 300)+">>"),
			UnknownSecret, strings.Repeat("N", maxNameInMessage) + "...", "no secret named NNN"},
		{"agent rule", billing, "GET", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			AgentNotAllowed, "GITHUB", "agent billing may not use secret GITHUB"},
		{"agent token narrowing", Caller{Agent: "ci", Rule: set.Agents["ci"], Token: grant{"OPENAI"}},
			"GET", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			AgentNotAllowed, "GITHUB", "the token of agent ci does not allow secret GITHUB"},
		{"anonymous token narrowing", Caller{Agent: "anonymous", Token: grant{}},
			"GET", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			AgentNotAllowed, "GITHUB", "does not allow secret GITHUB"},
		{"host", billing, "GET", "https://evil.example/v1/charges", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			HostNotAllowed, "STRIPE_LIVE", "keyhole: secret STRIPE_LIVE may only be sent to api.stripe.com, not evil.example"},
		{"host wrong port", billing, "GET", "https://api.stripe.com:8443/v1/charges", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			HostNotAllowed, "STRIPE_LIVE", "not api.stripe.com:8443"},
		{"host suffix without dot", anon, "GET", "https://evilgithub.com/", header("Authorization", "token <<GITHUB>>"),
			HostNotAllowed, "GITHUB", "may only be sent to *.github.com or api.github.com:8443, not evilgithub.com"},
		{"wildcard apex", ci, "GET", "https://github.com/", header("Authorization", "token <<GITHUB>>"),
			HostNotAllowed, "GITHUB", "not github.com"},
		{"wildcard wrong port", ci, "GET", "https://raw.github.com:8443/", header("Authorization", "token <<GITHUB>>"),
			HostNotAllowed, "GITHUB", "not raw.github.com:8443"},
		{"header", billing, "GET", stripe, header("X-Api-Key", "<<STRIPE_LIVE>>"),
			HeaderNotAllowed, "STRIPE_LIVE", "may only be sent in the Authorization header, not in X-Api-Key"},
		{"header of two", anon, "GET", "https://api.openai.com/", header("Cookie", "k=<<OPENAI>>"),
			HeaderNotAllowed, "OPENAI", "only be sent in the Authorization or X-Api-Key header, not in Cookie"},
		{"method", billing, "DELETE", stripe, header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			MethodNotAllowed, "STRIPE_LIVE", "may only be sent with GET or POST, not DELETE"},
		{"method lower case", billing, "get", stripe, header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			MethodNotAllowed, "STRIPE_LIVE", "not get"},
		{"TRACE", ci, "TRACE", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			MethodNotAllowed, "GITHUB", "secret GITHUB is never sent with TRACE"},
		{"TRACK", ci, "TRACK", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			MethodNotAllowed, "GITHUB", "never sent with TRACK"},
		{"trace lower case", ci, "trace", "https://api.github.com/", header("Authorization", "token <<GITHUB>>"),
			MethodNotAllowed, "GITHUB", "never sent with trace"},
		{"path", billing, "GET", "https://api.stripe.com/v2/charges", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "may only be sent to paths /v1/*, not /v2/charges"},
		{"path prefix without slash", billing, "GET", "https://api.stripe.com/v1", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "not /v1"},
		{"path root", billing, "GET", "https://api.stripe.com", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "not /"},
		{"path dot dot", billing, "GET", "https://api.stripe.com/v1/../v2", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"path dot", billing, "GET", "https://api.stripe.com/v1/./x", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"path trailing dot dot", billing, "GET", "https://api.stripe.com/v1/..", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"path encoded dot dot", billing, "GET", "https://api.stripe.com/v1/%2e%2e/x", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"path encoded dot upper case", billing, "GET", "https://api.stripe.com/v1/%2E%2E/x", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"path empty segment", billing, "GET", "https://api.stripe.com/v1//x", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "empty segments"},
		{"path encoded slash", billing, "GET", "https://api.stripe.com/v1/a%2Fb", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "encoded slashes"},
		{"path encoded backslash", billing, "GET", "https://api.stripe.com/v1/a%5c..%5cb", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "backslashes"},
		{"path dot dot with parameter", billing, "GET", "https://api.stripe.com/v1/..;/admin", header("Authorization", "Bearer <<STRIPE_LIVE>>"),
			PathNotAllowed, "STRIPE_LIVE", "dot segments"},
		{"plaintext", anon, "GET", "http://api.openai.com/", header("Authorization", "Bearer <<OPENAI>>"),
			PlaintextNotAllowed, "OPENAI", "secret OPENAI may only be sent over https; use https://api.openai.com"},
		{"secret unavailable", billing, "GET", stripe, header("X-Missing", "<<MISSING>>"),
			SecretUnavailable, "MISSING", "secret MISSING is unavailable"},
		{"too many in one value", anon, "GET", "https://api.github.com/", header("X-Many", tooMany),
			BadRequest, "", "too many placeholders"},
		{"too many in one request", anon, "GET", "https://api.github.com/", header(spread...),
			BadRequest, "", "too many placeholders"},
		{"basic credential", anon, "GET", "https://evil.example/", header("Authorization", basic("<<DB_USER>>:<<DB_PASS>>")),
			HostNotAllowed, "DB_USER", "secret DB_USER may only be sent to db.example.com, not evil.example"},
		{"second value of a header", anon, "GET", "https://api.openai.com/", header("X-Api-Key", "<<OPENAI>>", "X-Api-Key", "<<GITHUB>>"),
			HostNotAllowed, "GITHUB", "not api.openai.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgt := target(t, tc.method, tc.url)
			before := tc.h.Clone()
			res, ref := Apply(set, tc.caller, tgt, tc.h)
			if ref == nil {
				t.Fatalf("got no refusal (secrets %v), want %s", res.Secrets, tc.want)
			}
			if res.Header != nil || res.Secrets != nil || res.SwapBack != nil {
				t.Errorf("got result %+v with a refusal, want the zero Result", res)
			}
			if ref.Reason != tc.want {
				t.Errorf("got reason %s, want %s (%s)", ref.Reason, tc.want, ref.Message)
			}
			if got, want := ref.Status(), tc.want.Status(); got != want {
				t.Errorf("got status %d, want %d", got, want)
			}
			if ref.Secret != tc.wantSecret {
				t.Errorf("got secret %q, want %q", ref.Secret, tc.wantSecret)
			}
			if ref.Host != tgt.Host {
				t.Errorf("got host %q, want %q", ref.Host, tgt.Host)
			}
			if !strings.HasPrefix(ref.Message, "keyhole: ") {
				t.Errorf("got message %q, want the prefix %q", ref.Message, "keyhole: ")
			}
			if ref.Error() != ref.Message {
				t.Errorf("got Error() %q, want the message %q", ref.Error(), ref.Message)
			}
			if !strings.Contains(ref.Message, tc.wantText) {
				t.Errorf("got message %q, want it to contain %q", ref.Message, tc.wantText)
			}
			if tc.wantSecret != "" && !strings.Contains(ref.Message, tc.wantSecret) {
				t.Errorf("got message %q, want it to name secret %s", ref.Message, tc.wantSecret)
			}
			if len(ref.Message) > 400 {
				t.Errorf("got a message of %d bytes, want at most 400", len(ref.Message))
			}
			for name, v := range testValues {
				if strings.Contains(ref.Message, v) || strings.Contains(ref.Secret, v) || strings.Contains(ref.Host, v) {
					t.Errorf("refusal contains the value of secret %s", name)
				}
			}
			assertNoValue(t, "refusal message", ref.Message)
			assertHeaderEqual(t, tc.h, before)
		})
	}
}

// TestApplyRefusalStatus pins the status of every reason to the contract's
// table.
func TestApplyRefusalStatus(t *testing.T) {
	tests := []struct {
		reason Reason
		want   int
	}{
		{UnknownSecret, 403}, {HostNotAllowed, 403}, {HeaderNotAllowed, 403},
		{MethodNotAllowed, 403}, {PathNotAllowed, 403}, {PlaintextNotAllowed, 403},
		{AgentNotAllowed, 403}, {EgressDenied, 403}, {PrivateAddress, 403}, {HostMismatch, 403},
		{BadRequest, 400},
		{ProxyAuthRequired, 407}, {TokenExpired, 407}, {TokenRevoked, 407},
		{SecretUnavailable, 502}, {UpstreamTLS, 502}, {UpstreamUnreachable, 502}, {UnscrubbableEncoding, 502},
		{UpstreamTimeout, 502},
		{ClientClosed, 499},
		{ShuttingDown, 503},
		{UnsupportedSignature, 403}, {ShareNotAllowed, 403}, {IntakeNotAllowed, 403},
		{NotFound, 404}, {StateUnavailable, 407}, {BudgetExceeded, 429}, {CaptureFailed, 502},
	}
	for _, tc := range tests {
		t.Run(string(tc.reason), func(t *testing.T) {
			if got := tc.reason.Status(); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// TestApplyDeterministic sends a request with several faults many times:
// whatever the order of the header map, the refusal is the same.
func TestApplyDeterministic(t *testing.T) {
	set := newTestSet(t)
	h := header(
		"X-Zeta", "<<NOPE>>",
		"X-Beta", "<<STRIPE_LIVE>>",
		"Authorization", "Bearer <<GITHUB>>",
		"X-Alpha", "<<OPENAI>>",
		"Cookie", "a=<<MISSING>>",
		"X-Gamma", "<<PLAIN>>",
	)
	tgt := target(t, "GET", "http://api.stripe.com/v2")
	first := ""
	for i := range 200 {
		_, ref := Apply(set, Caller{Agent: "anonymous"}, tgt, h)
		if ref == nil {
			t.Fatal("got no refusal, want one")
		}
		got := string(ref.Reason) + " " + ref.Secret + " " + ref.Message
		if i == 0 {
			first = got
			continue
		}
		if got != first {
			t.Fatalf("run %d: got %q, want %q", i, got, first)
		}
	}
	// Authorization sorts first; GITHUB may not go to api.stripe.com.
	if want := "host_not_allowed GITHUB "; !strings.HasPrefix(first, want) {
		t.Errorf("got %q, want the prefix %q", first, want)
	}
}

// assertHeaderEqual fails when got differs from want, without printing
// values, which may be secrets.
func assertHeaderEqual(tb testing.TB, got, want http.Header) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Errorf("got %d header names, want %d", len(got), len(want))
	}
	for name, wv := range want {
		gv, ok := got[name]
		if !ok {
			tb.Errorf("header %s: missing", name)
			continue
		}
		if len(gv) != len(wv) {
			tb.Errorf("header %s: got %d values, want %d", name, len(gv), len(wv))
			continue
		}
		for i := range wv {
			if gv[i] != wv[i] {
				assertNoValue(tb, "header "+name, gv[i])
				tb.Errorf("header %s value %d: differs from the expected value", name, i)
			}
		}
	}
}
