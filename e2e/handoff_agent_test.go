package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"keyhole/handoff"
	"keyhole/secret"
)

const (
	handoffAgentToken = "provisioner-token-e2e-0123456789"
	handedInValue     = "SG.handed_in_by_a_human_e2e_0123456789"
)

// TestHandoffAgent: an agent shares a secret through keyhole.internal (the
// webhook gets the link, the agent never), and asks a human for one: the
// human's answer, sealed as the page seals it, becomes <<SENDGRID>>, which
// the agent then injects toward the host the human allowed, and only there.
// Nothing the agent received holds a value, a link or a key.
func TestHandoffAgent(t *testing.T) {
	hook := newWebhook(t)
	sendgrid := newUpstream(t, []string{"api.sendgrid.test", "api.other.test"}, nil)
	_, sgPort, _ := net.SplitHostPort(sendgrid.Addr())
	rulesYAML := handoffRules(hook, `  api.sendgrid.test: 127.0.0.1:`+sgPort+`
  api.other.test: 127.0.0.1:`+sgPort+`
agents:
  provisioner:
    token: env:PROVISIONER_TOKEN
    secrets: [STRIPE]
    share: {secrets: ["STRIP*"], to: [alice]}
    intake: {from: [alice]}
  other:
    token: env:PROVISIONER_TOKEN
    secrets: [STRIPE]
`)
	k := startKeyhole(t, rulesYAML, "PROVISIONER_TOKEN="+handoffAgentToken)
	k.AlsoSecret(handedInValue)
	pages := newPagesClient(t, k)
	var received strings.Builder // everything the agent got
	call := func(agent, method, url, body string, header ...[2]string) response {
		t.Helper()
		resp := goClient{}.Do(t, k, request{Method: method, URL: url, Body: body, Header: header, ProxyUser: agent, ProxyPass: handoffAgentToken})
		if resp.Err != "" {
			t.Fatalf("%s %s: %s", method, url, resp.Err)
		}
		received.WriteString(resp.Body)
		for name, vs := range resp.Header {
			received.WriteString(name + ": " + strings.Join(vs, ",") + "\n")
		}
		return resp
	}

	// Share.
	resp := call("provisioner", "POST", "https://keyhole.internal/v1/shares", `{"secret":"STRIPE","to":"alice","expires_in":"10m"}`)
	var created handoff.Created
	if resp.Status != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &created) != nil || created.To != "alice" || created.ID == "" {
		t.Fatalf("share: got %d %s", resp.Status, resp.Body)
	}
	d := hook.wait(t, 0)
	id, key := splitLink(t, d.Link, handoff.SharePath)
	k.AlsoSecret(d.Link, key)
	if id != created.ID {
		t.Errorf("got share id %q in the link, want %q", id, created.ID)
	}
	var rev handoff.RevealResponse
	if st := pages.do("POST", "/s/"+id+"/reveal", nil, &rev); st != http.StatusOK {
		t.Fatalf("reveal: got %d", st)
	}
	ct, _ := handoff.Decode(rev.Ciphertext, 0)
	if v, err := handoff.OpenShare(id, key, ct); err != nil || !v.Equal(stripeValue) {
		t.Fatalf("the share does not open to the secret (%v)", err)
	}
	k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "share_created" && r["agent"] == "provisioner" })

	// Refused shares: the JSON refusal of Part 1.
	for _, tc := range []struct {
		agent, body string
		status      int
		reason      string
	}{
		{"other", `{"secret":"STRIPE","to":"alice"}`, http.StatusForbidden, "share_not_allowed"},
		{"provisioner", `{"secret":"STRIPE","to":"bob"}`, http.StatusForbidden, "share_not_allowed"},
		{"provisioner", `{"secret":"STRIPE","to":"alice","views":1000}`, http.StatusBadRequest, "bad_request"},
		{"provisioner", `{"secret":"STRIPE","to":"alice","expires_in":"3h"}`, http.StatusBadRequest, "bad_request"},
	} {
		resp := call(tc.agent, "POST", "https://keyhole.internal/v1/shares", tc.body)
		assertRefusal(t, resp, tc.status, tc.reason, "")
	}

	// Intake.
	resp = call("provisioner", "POST", "https://keyhole.internal/v1/intake", `{"name":"SENDGRID","hosts":["api.sendgrid.test"],"from":"alice","reason":"weekly report"}`)
	var st handoff.IntakeStatus
	if resp.Status != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &st) != nil || st.Status != handoff.StatusPending {
		t.Fatalf("intake: got %d %s", resp.Status, resp.Body)
	}
	d = hook.wait(t, 1)
	iid, frag := splitLink(t, d.Link, handoff.IntakePath)
	capability, fingerprint, _ := strings.Cut(frag, ".")
	k.AlsoSecret(d.Link, capability)
	if d.Kind != "intake" || iid != st.ID {
		t.Fatalf("got delivery kind %q id %q, want intake %q", d.Kind, iid, st.ID)
	}
	if r := call("other", "GET", "https://keyhole.internal/v1/intake/"+iid, ""); r.Status != http.StatusNotFound {
		t.Errorf("another agent's poll: got %d, want 404", r.Status)
	}
	var meta handoff.IntakeMeta
	if code := pages.do("GET", "/i/"+iid+"/meta", nil, &meta); code != http.StatusOK || meta.Agent != "provisioner" || meta.Reason != "weekly report" {
		t.Fatalf("intake meta: got %d %+v", code, meta)
	}
	pub, _ := handoff.Decode(meta.PublicKey, 0)
	if handoff.Fingerprint(pub) != fingerprint {
		t.Fatal("the served key is not the link's")
	}
	answer, err := handoff.SealAnswer(pub, iid, secret.FromString(handedInValue))
	if err != nil {
		t.Fatal(err)
	}
	answer.Hosts = []string{"api.sendgrid.test"}
	answer.Capability = handoff.Encode(make([]byte, handoff.CapabilityBytes)) // what an agent could guess
	if code := pages.do("POST", "/i/"+iid+"/answer", answer, nil); code != http.StatusForbidden {
		t.Errorf("an answer without the link's capability: got %d, want 403", code)
	}
	answer.Capability = capability
	if code := pages.do("POST", "/i/"+iid+"/answer", answer, nil); code != http.StatusNoContent {
		t.Fatalf("answer: got %d", code)
	}
	if code := pages.do("POST", "/i/"+iid+"/answer", answer, nil); code != http.StatusGone {
		t.Errorf("a second answer: got %d, want 410", code)
	}
	resp = call("provisioner", "GET", "https://keyhole.internal/v1/intake/"+iid, "")
	if resp.Status != http.StatusOK || json.Unmarshal([]byte(resp.Body), &st) != nil || st.Status != handoff.StatusFulfilled || st.Placeholder != "<<SENDGRID>>" {
		t.Fatalf("poll: got %d %s", resp.Status, resp.Body)
	}
	// The agent injects <<SENDGRID>> toward the host the human allowed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp = call("provisioner", "GET", "https://api.sendgrid.test/v3/mail", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"})
		if resp.Status == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.Status != http.StatusOK || sendgrid.Last(t).Header.Get("Authorization") != "Bearer "+handedInValue {
		t.Fatalf("injection toward the allowed host: got %d; the upstream did not see the handed-in value", resp.Status)
	}
	assertRefusal(t, call("provisioner", "GET", "https://api.other.test/", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"}), http.StatusForbidden, "host_not_allowed", "SENDGRID")
	assertRefusal(t, call("other", "GET", "https://api.sendgrid.test/", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"}), http.StatusForbidden, "agent_not_allowed", "SENDGRID")
	k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "intake_fulfilled" && r["name"] == "SENDGRID" })

	got := received.String()
	assertNoSecretIn(t, "what the agent received", got)
	for i, s := range []string{handedInValue, key, capability, d.Link} {
		if strings.Contains(got, s) {
			t.Errorf("what the agent received holds hand-off secret #%d", i)
		}
	}
}
