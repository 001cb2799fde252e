package handoff

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzServeAgent sends arbitrary bodies to the agents' API: it never
// panics, a refusal is one line that holds no value, and no answer holds a
// link, a key or a value.
func FuzzServeAgent(f *testing.F) {
	fx := newFixture(f)
	for _, s := range []string{
		`{"secret":"STRIPE_KEY_1","to":"alice"}`,
		`{"secret":"STRIPE_KEY_1","to":"alice","views":3,"expires_in":"90m","note":"n"}`,
		`{"name":"SENDGRID","hosts":["api.sendgrid.com"],"from":"oncall","reason":"r"}`,
		`{"secret":"STRIPE_KEY_1","to":"alice","views":1e9}`, `[]`, `{"secret":null}`, `{"hosts":"x"}`, "",
	} {
		f.Add("/v1/shares", s)
		f.Add("/v1/intake", s)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		if u, err := url.Parse("https://keyhole.internal" + path); err != nil || u.Path != path || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " #?%") {
			return // not a path the proxy would hand over
		}
		status, out, ref := fx.call(t, fx.id("provisioner"), "POST", path, body)
		if ref != nil {
			if strings.ContainsAny(ref.Message, "\r\n") || !strings.HasPrefix(ref.Message, "keyhole: ") {
				t.Fatalf("got refusal message %q", ref.Message)
			}
			assertClean(t, ref.Message, shareValue, "other_value_not_shared_123")
			return
		}
		if status != 201 {
			t.Fatalf("got status %d without a refusal", status)
		}
		assertClean(t, string(out), shareValue, "#", "https://")
	})
}
