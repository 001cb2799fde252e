package inject

import (
	"net/http"
	"strings"
	"testing"
)

// TestApplyMethodOverride checks that a method-override header cannot
// carry a secret limited by methods to a method it may not be sent with.
func TestApplyMethodOverride(t *testing.T) {
	set := newTestSet(t)
	anon := Caller{Agent: "anonymous"}
	stripe := "https://api.stripe.com/v1/charges"
	auth := "Bearer <<STRIPE_LIVE>>"
	tests := []struct {
		name     string
		url      string
		h        http.Header
		refused  bool
		wantText string
	}{
		{"X-HTTP-Method-Override DELETE", stripe, header("Authorization", auth, "X-Http-Method-Override", "DELETE"), true, "X-Http-Method-Override header asks for DELETE"},
		{"X-HTTP-Method PUT", stripe, header("Authorization", auth, "X-Http-Method", "PUT"), true, "asks for PUT"},
		{"X-Method-Override lower case", stripe, header("Authorization", auth, "X-Method-Override", "delete"), true, "asks for DELETE"},
		{"list with a bad element", stripe, header("Authorization", auth, "X-Http-Method-Override", "GET, PATCH"), true, "asks for PATCH"},
		{"second value", stripe, header("Authorization", auth, "X-Http-Method", "GET", "X-Http-Method", "DELETE"), true, "asks for DELETE"},
		{"unknown method not repeated", stripe, header("Authorization", auth, "X-Http-Method", "PURGE-x"), true, "asks for another method"},
		{"allowed override", stripe, header("Authorization", auth, "X-Http-Method-Override", "POST"), false, ""},
		{"empty override", stripe, header("Authorization", auth, "X-Http-Method-Override", " "), false, ""},
		{"no methods limit", "https://api.github.com/", header("Authorization", "token <<GITHUB>>", "X-Http-Method-Override", "DELETE"), false, ""},
		{"TRACE override, no methods limit", "https://api.github.com/", header("Authorization", "token <<GITHUB>>", "X-Method-Override", "trace"), true, "naming TRACE"},
		{"no secret, any override", stripe, header("X-Http-Method-Override", "DELETE"), false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ref := Apply(set, anon, target(t, "GET", tc.url), tc.h)
			if !tc.refused {
				if ref != nil {
					t.Fatalf("got refusal %s (%s), want allowed", ref.Reason, ref.Message)
				}
				return
			}
			if ref == nil {
				t.Fatal("got allowed, want method_not_allowed")
			}
			if ref.Reason != MethodNotAllowed {
				t.Errorf("reason: got %s, want %s", ref.Reason, MethodNotAllowed)
			}
			if !strings.Contains(ref.Message, tc.wantText) {
				t.Errorf("message: got %q, want it to contain %q", ref.Message, tc.wantText)
			}
			assertNoValue(t, "refusal message", ref.Message)
		})
	}
}
