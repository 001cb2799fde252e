package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"keyhole/handoff"
)

// TestCaptureThenShare is the loop without a browser: the agent creates a
// key upstream and gets its placeholder, shares the captured secret with
// alice through https://keyhole.internal/v1/shares, alice's webhook gets
// the link, and the link's key opens the ciphertext the reveal returns to
// the real key. Another agent may not share it. Nothing the agents got
// holds the key or the link.
func TestCaptureThenShare(t *testing.T) {
	hook := newWebhook(t)
	_, port, _ := net.SplitHostPort(hook.Addr())
	w := newMintWorldWith(t, `
agents:
  provisioner:
    token: env:PROV_TOKEN
    secrets: []
    share: {secrets: ["MINTED_*"], to: [alice]}
  other:
    token: env:OTHER_TOKEN
    secrets: []
    share: {secrets: ["MINTED_*"], to: [alice]}
capture:
  - host: api.mint.test
    method: POST
    path: /v1/api_keys
    json: secret
    name: MINTED
    hosts: [api.mint.test]
handoff:
  listen: 127.0.0.1:0
  base_url: https://keyhole.test
  recipients:
    alice: {webhook: "https://hooks.test:`+port+`/alice"}
resolve:
  api.mint.test: UPSTREAM
  hooks.test: 127.0.0.1
`)
	pages := newPagesClient(t, w.k)
	var seen strings.Builder // everything the agents received
	do := func(r request) response {
		resp := (goClient{}).Do(t, w.k, r)
		seen.WriteString(resp.Body + "\n" + strings.Join(headerLines(resp.Header), "\n") + "\n")
		return resp
	}
	resp := do(request{Method: http.MethodPost, URL: "https://api.mint.test/v1/api_keys?coding=gzip", Body: "{}",
		ProxyUser: "provisioner", ProxyPass: provToken})
	ph := mintedPlaceholder.FindString(resp.Body)
	if resp.Status != http.StatusOK || ph == "" {
		t.Fatalf("capture: got %d %s", resp.Status, resp.Body)
	}
	name := strings.Trim(ph, "<>")
	key := w.all()[0]

	share := func(user, pass string) response {
		b, _ := json.Marshal(map[string]any{"secret": name, "to": "alice", "views": 1, "expires_in": "10m"})
		return do(request{Method: http.MethodPost, URL: "https://keyhole.internal/v1/shares", Body: string(b),
			ProxyUser: user, ProxyPass: pass, Header: [][2]string{{"Content-Type", "application/json"}}})
	}
	if r := share("other", mintOtherToken); r.Status != http.StatusForbidden {
		t.Fatalf("another agent sharing the captured secret: got %d %s, want 403", r.Status, r.Body)
	} else if m := r.refusal(t); m["reason"] != "share_not_allowed" && m["reason"] != "agent_not_allowed" {
		t.Fatalf("another agent sharing the captured secret: got reason %v", m["reason"])
	}
	created := share("provisioner", provToken)
	if created.Status != http.StatusCreated {
		t.Fatalf("share: got %d %s", created.Status, created.Body)
	}
	d := hook.wait(t, 0)
	id, linkKey := splitLink(t, d.Link, handoff.SharePath)
	w.k.AlsoSecret(d.Link, linkKey)
	var rev handoff.RevealResponse
	if st := pages.do("POST", "/s/"+id+"/reveal", nil, &rev); st != http.StatusOK {
		t.Fatalf("reveal: got %d", st)
	}
	ct, err := handoff.Decode(rev.Ciphertext, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := handoff.OpenShare(id, linkKey, ct)
	if err != nil || !v.Equal(key) {
		t.Fatalf("the shared value is not the captured key (%v)", err)
	}
	got := seen.String()
	w.assertNoMinted(t, "what the agents received", got)
	if strings.Contains(got, linkKey) || strings.Contains(got, d.Link) {
		t.Fatal("an agent received the link")
	}
}

// headerLines renders h as "Name: value" lines.
func headerLines(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}
