package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/handoff"
	"keyhole/redisstate/redistest"
	"keyhole/secret"
)

// TestReplicasMintOnce sends concurrent requests for an OAuth 2.0 token
// through three replicas: one replica mints it (under the shared lock),
// the others use its token.
func TestReplicasMintOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ts := newTokenServer(t)
	api := newUpstream(t, []string{"graph.test"}, nil)
	w := startReplicasOf(t, srv, 3, oauthRules(t, ts, api, "burst"),
		"OAUTH_CLIENT_ID="+oauthClientID, "OAUTH_CLIENT_SECRET="+oauthClientSecret)
	t.Cleanup(func() {
		for i, r := range w.rs {
			ts.assertNoTokens(t, fmt.Sprintf("replica %d's output", i), r.stdout.String()+r.stderr.String())
		}
	})
	var wg sync.WaitGroup
	statuses := make([]int, 30)
	for i := range statuses {
		wg.Go(func() {
			statuses[i] = goClient{}.Do(t, w.rs[i%3].keyhole, request{URL: "https://graph.test/v1/me",
				Header: [][2]string{{"Authorization", "Bearer <<G_BURST>>"}}}).Status
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Fatalf("request %d got %d", i, st)
		}
	}
	if n := ts.count("/burst"); n != 1 {
		t.Fatalf("3 replicas asked the token endpoint %d times, want once", n)
	}
	if holdsText(t, w.rawRedis(t), ts.tokens()[0]) {
		t.Fatal("Redis holds the minted token in the clear")
	}
}

// TestReplicasShareLinks creates a share through replica A (keyhole share
// with A's settings): B shows and reveals it, C finds it viewed; and 100
// reveals of another share racing across the three replicas give exactly
// one ciphertext.
func TestReplicasShareLinks(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hook := newWebhook(t)
	w := startReplicasOf(t, srv, 3, handoffRules(hook, ""))
	a := w.rs[0]
	var pages []*pagesClient
	for _, r := range w.rs {
		pages = append(pages, newPagesClient(t, r.keyhole))
	}
	share := func() (id, key string) {
		t.Helper()
		env := append([]string{"KEYHOLE_STATE_DIR=" + a.StateDir, "KEYHOLE_RULES=" + a.Rules, "STRIPE_KEY=" + stripeValue}, a.redisEnv...)
		out, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--print")
		if code != 0 {
			t.Fatalf("share: exit %d: %s", code, stderr)
		}
		link := strings.TrimSpace(out)
		id, key = splitLink(t, link, handoff.SharePath)
		for _, r := range w.rs {
			r.AlsoSecret(link, key)
		}
		return id, key
	}

	id, key := share()
	var meta handoff.ShareMeta
	if st := pages[1].do("GET", "/s/"+id+"/meta", nil, &meta); st != http.StatusOK || meta.Status != handoff.StatusReady {
		t.Fatalf("B: meta of a share created through A: %d %+v", st, meta)
	}
	var rev handoff.RevealResponse
	if st := pages[1].do("POST", "/s/"+id+"/reveal", nil, &rev); st != http.StatusOK {
		t.Fatalf("B: reveal: %d", st)
	}
	ct, err := handoff.Decode(rev.Ciphertext, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := handoff.OpenShare(id, key, ct); err != nil || !v.Equal(stripeValue) {
		t.Fatalf("the ciphertext B revealed does not open to the secret (%v)", err)
	}
	var gone handoff.GoneResponse
	if st := pages[2].do("POST", "/s/"+id+"/reveal", nil, &gone); st != http.StatusGone || gone.Status != handoff.StatusViewed {
		t.Fatalf("C: a second reveal: %d %+v, want 410 viewed", st, gone)
	}

	id2, _ := share()
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	for i := range statuses {
		wg.Go(func() { statuses[i] = pages[i%3].do("POST", "/s/"+id2+"/reveal", nil, nil) })
	}
	wg.Wait()
	ok, goneN := 0, 0
	for _, st := range statuses {
		switch st {
		case http.StatusOK:
			ok++
		case http.StatusGone:
			goneN++
		}
	}
	if ok != 1 || goneN != 99 {
		t.Fatalf("100 racing reveals across 3 replicas: %d succeeded, %d gone; want 1 and 99", ok, goneN)
	}
	if holdsText(t, w.rawRedis(t), stripeValue) {
		t.Fatal("Redis holds the shared secret in the clear")
	}
}

// TestReplicasIntake: an agent asks for a secret through replica A, the
// human answers on B's page, the agent's poll through C finds it
// fulfilled, and C and A inject the handed-in value (it reached them
// through the shared store).
func TestReplicasIntake(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hook := newWebhook(t)
	sendgrid := newUpstream(t, []string{"api.sendgrid.test"}, nil)
	_, sgPort, _ := net.SplitHostPort(sendgrid.Addr())
	rulesYAML := handoffRules(hook, `  api.sendgrid.test: 127.0.0.1:`+sgPort+`
agents:
  provisioner:
    token: env:PROVISIONER_TOKEN
    secrets: [STRIPE]
    intake: {from: [alice]}
`)
	w := startReplicasOf(t, srv, 3, rulesYAML, "PROVISIONER_TOKEN="+handoffAgentToken)
	a, b, c := w.rs[0], w.rs[1], w.rs[2]
	for _, r := range w.rs {
		r.AlsoSecret(handedInValue)
	}
	call := func(r *replica, method, url, body string, header ...[2]string) response {
		t.Helper()
		resp := goClient{}.Do(t, r.keyhole, request{Method: method, URL: url, Body: body, Header: header, ProxyUser: "provisioner", ProxyPass: handoffAgentToken})
		if resp.Err != "" {
			t.Fatalf("%s %s: %s", method, url, resp.Err)
		}
		return resp
	}
	resp := call(a, "POST", "https://keyhole.internal/v1/intake", `{"name":"SENDGRID","hosts":["api.sendgrid.test"],"from":"alice"}`)
	var st handoff.IntakeStatus
	if resp.Status != http.StatusCreated || json.Unmarshal([]byte(resp.Body), &st) != nil {
		t.Fatalf("intake through A: got %d %s", resp.Status, resp.Body)
	}
	d := hook.wait(t, 0)
	iid, frag := splitLink(t, d.Link, handoff.IntakePath)
	capability, _, _ := strings.Cut(frag, ".")
	for _, r := range w.rs {
		r.AlsoSecret(d.Link, capability)
	}
	pages := newPagesClient(t, b.keyhole)
	var meta handoff.IntakeMeta
	if code := pages.do("GET", "/i/"+iid+"/meta", nil, &meta); code != http.StatusOK {
		t.Fatalf("B: intake meta: %d", code)
	}
	pub, _ := handoff.Decode(meta.PublicKey, 0)
	answer, err := handoff.SealAnswer(pub, iid, secret.FromString(handedInValue))
	if err != nil {
		t.Fatal(err)
	}
	answer.Hosts, answer.Capability = []string{"api.sendgrid.test"}, capability
	if code := pages.do("POST", "/i/"+iid+"/answer", answer, nil); code != http.StatusNoContent {
		t.Fatalf("B: answer: %d", code)
	}
	if code := newPagesClient(t, c.keyhole).do("POST", "/i/"+iid+"/answer", answer, nil); code != http.StatusGone {
		t.Errorf("C: a second answer: got %d, want 410", code)
	}
	resp = call(c, "GET", "https://keyhole.internal/v1/intake/"+iid, "")
	if resp.Status != http.StatusOK || json.Unmarshal([]byte(resp.Body), &st) != nil || st.Status != handoff.StatusFulfilled {
		t.Fatalf("C: poll: got %d %s", resp.Status, resp.Body)
	}
	for name, r := range map[string]*replica{"C": c, "A": a} {
		within(t, name+" injects the handed-in value", 10*time.Second, func() bool {
			before := sendgrid.Hits()
			resp := call(r, "GET", "https://api.sendgrid.test/v3/mail", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"})
			return resp.Status == http.StatusOK && sendgrid.Hits() == before+1 && sendgrid.Last(t).Header.Get("Authorization") == "Bearer "+handedInValue
		})
	}
	if holdsText(t, w.rawRedis(t), handedInValue) {
		t.Fatal("Redis holds the handed-in value in the clear")
	}
}
