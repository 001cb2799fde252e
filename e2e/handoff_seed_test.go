package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"keyhole/handoff"
)

// TestHandoffSeedLoop is the seed's loop with a Go client in place of the
// browser: the agent creates a key upstream, keyhole captures it into
// <<MINTED_id>>, the agent uses it (the upstream sees the real key),
// shares it with alice, alice's webhook receives the link, and the link
// reveals the real key; nothing the agent received holds it.
func TestHandoffSeedLoop(t *testing.T) {
	hook := newWebhook(t)
	w := &mintWorld{}
	w.up = newUpstream(t, []string{"api.mint.test"}, http.HandlerFunc(w.serve))
	rulesYAML := handoffRules(hook, `  api.mint.test: `+w.up.Addr()+`
agents:
  provisioner:
    token: env:PROV_TOKEN
    secrets: [STRIPE]
    share: {secrets: ["MINTED_*"], to: [alice]}
capture:
  - host: api.mint.test
    method: POST
    path: /v1/api_keys
    json: secret
    name: MINTED
    hosts: [api.mint.test]
`)
	w.k = startKeyhole(t, rulesYAML, "PROV_TOKEN="+provToken)
	k := w.k
	pages := newPagesClient(t, k)
	var received strings.Builder
	call := func(method, url, body string, header ...[2]string) response {
		t.Helper()
		resp := goClient{}.Do(t, k, request{Method: method, URL: url, Body: body, Header: header, ProxyUser: "provisioner", ProxyPass: provToken})
		if resp.Err != "" {
			t.Fatalf("%s %s: %s", method, url, resp.Err)
		}
		received.WriteString(resp.Body)
		for name, vs := range resp.Header {
			received.WriteString(name + ": " + strings.Join(vs, ",") + "\n")
		}
		return resp
	}

	resp := call("POST", "https://api.mint.test/v1/api_keys", `{"name":"billing"}`)
	placeholder := regexp.MustCompile(`<<MINTED_[A-Za-z0-9_]+>>`).FindString(resp.Body)
	if resp.Status != http.StatusOK || placeholder == "" {
		t.Fatalf("capture: got %d %s", resp.Status, resp.Body)
	}
	minted := w.all()
	if len(minted) != 1 {
		t.Fatalf("the upstream minted %d keys, want 1", len(minted))
	}
	if resp = call("GET", "https://api.mint.test/v1/balance", "", [2]string{"Authorization", "Bearer " + placeholder}); resp.Status != http.StatusOK ||
		w.up.Last(t).Header.Get("Authorization") != "Bearer "+minted[0] {
		t.Fatalf("using the captured key: got %d; the upstream did not see the minted key", resp.Status)
	}

	name := strings.TrimSuffix(strings.TrimPrefix(placeholder, "<<"), ">>")
	resp = call("POST", "https://keyhole.internal/v1/shares", `{"secret":"`+name+`","to":"alice","note":"the new billing key"}`)
	var created handoff.Created
	if resp.Status != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &created) != nil {
		t.Fatalf("share: got %d %s", resp.Status, resp.Body)
	}
	d := hook.wait(t, 0)
	id, key := splitLink(t, d.Link, handoff.SharePath)
	k.AlsoSecret(d.Link, key)
	var rev handoff.RevealResponse
	if st := pages.do("POST", "/s/"+id+"/reveal", nil, &rev); st != http.StatusOK {
		t.Fatalf("reveal: got %d", st)
	}
	ct, _ := handoff.Decode(rev.Ciphertext, 0)
	if v, err := handoff.OpenShare(id, key, ct); err != nil || !v.Equal(minted[0]) {
		t.Fatalf("the link does not reveal the minted key (%v)", err)
	}
	got := received.String()
	for i, s := range []string{minted[0], d.Link, key} {
		if strings.Contains(got, s) {
			t.Errorf("what the agent received holds secret #%d", i)
		}
	}
}
