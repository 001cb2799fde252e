package e2e

import (
	"net/http"
	"strings"
	"testing"

	"keyhole/upstream/upstreamtest"
)

// TestAgentAPIIsAnsweredByKeyhole checks, through every client, that
// https://keyhole.internal is answered by keyhole itself with a JSON
// refusal of Part 1 (here for a path the API does not have: not_found),
// over a tunnel whose leaf is keyhole's, without ever dialing
// the name: a resolve pin points it at a listener that counts connections.
func TestAgentAPIIsAnsweredByKeyhole(t *testing.T) {
	pin, dialed := upstreamtest.Counting(t)
	k := startKeyhole(t, "egress:\n  default: deny\nresolve:\n  keyhole.internal: "+pin+"\n")
	for _, cl := range append(clients(t), nodeClient{}) {
		t.Run(cl.Name(), func(t *testing.T) {
			resp := cl.Do(t, k, request{URL: "https://keyhole.internal/v1/nothing?x=1"})
			assertRefusal(t, resp, http.StatusNotFound, "not_found", "")
		})
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("keyhole dialed keyhole.internal %d times", n)
	}
	recs := k.AuditRecords(t)
	n := 0
	for _, r := range recs {
		if r["host"] == "keyhole.internal" && r["path"] == "/v1/nothing" && r["status"] == float64(404) && r["reason"] == "not_found" {
			n++
		}
	}
	if n < 3 {
		t.Errorf("%d audit records for keyhole.internal, want one per client", n)
	}
	// Plain http is refused with a hint.
	resp := (curlClient{}).Do(t, k, request{URL: "http://keyhole.internal/v1/shares"})
	assertRefusal(t, resp, http.StatusForbidden, "plaintext_not_allowed", "")
	if !strings.Contains(resp.Body, "https://keyhole.internal/v1/shares") {
		t.Errorf("the refusal does not say to use https: %s", resp.Body)
	}
}

// TestAgentAPIAuthenticates checks that a tunnel to keyhole.internal needs
// the agent's credentials like any other, and that keyhole env exports
// KEYHOLE_API.
func TestAgentAPIAuthenticates(t *testing.T) {
	k := startKeyhole(t, "agents:\n  bot:\n    token: env:BOT_TOKEN\n    secrets: []\n", "BOT_TOKEN=bot-token-0123456789abcdef")
	resp := (curlClient{}).Do(t, k, request{URL: "https://keyhole.internal/v1/nothing"})
	if resp.Status != http.StatusProxyAuthRequired && !strings.Contains(resp.Err, "response 407") {
		t.Fatalf("without credentials: got %d %s%s, want 407", resp.Status, resp.Body, resp.Err)
	}
	resp = (curlClient{}).Do(t, k, request{URL: "https://keyhole.internal/v1/nothing", ProxyUser: "bot", ProxyPass: "bot-token-0123456789abcdef"})
	assertRefusal(t, resp, http.StatusNotFound, "not_found", "")
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["host"] == "keyhole.internal" && r["agent"] == "bot" })
	if rec["status"] != float64(404) {
		t.Errorf("audit record %v", rec)
	}
	out, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "KEYHOLE_LISTEN=" + k.Addr, "BOT_TOKEN=bot-token-0123456789abcdef"}, "env", "--agent", "bot")
	if code != 0 || !strings.Contains(out, "export KEYHOLE_API='https://keyhole.internal'\n") {
		t.Fatalf("keyhole env (exit %d, %s) lacks KEYHOLE_API", code, stderr)
	}
}
