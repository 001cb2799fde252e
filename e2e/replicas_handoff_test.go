package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"keyhole/handoff"
	"keyhole/redisstate/redistest"
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
