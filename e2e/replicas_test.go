package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/handoff"
	"keyhole/redisstate/redistest"
)

// replicaRules has a secret from the environment (STRIPE), one from the
// store (STORED) and the billing agent, whose static token is
// billingToken.
const replicaRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [streams.test, api.source.test]
  STORED:
    source: "store:STORED"
    hosts: [api.source.test]
agents:
  billing:
    token: env:BILLING_TOKEN
    secrets: [STRIPE, STORED]
resolve:
  streams.test: %s
  api.source.test: %s
`

// keyFiles are the state dir's keys that replicas share (the CA, the token
// key, the store key and the fingerprint key); each replica keeps its own
// revocation file, minted list and audit chain.
var keyFiles = []string{"ca.pem", "ca-key.pem", "token-key", "store.key", "store-fingerprint.key"}

// replica is one keyhole serve of a test's replicas.
type replica struct {
	*keyhole
	redisEnv []string // KEYHOLE_REDIS_URL (and CA file) for its commands
}

// world3 is three replicas sharing one Redis, each with its own state dir
// holding copies of the same keys, and the upstreams of replicaRules.
type world3 struct {
	redis    *redistest.Server
	rs       []*replica
	streams  *upstream
	source   *upstream
	password string
}

// startReplicas starts Redis-backed replicas of replicaRules over srv.
func startReplicas(t *testing.T, srv *redistest.Server, n int) *world3 {
	t.Helper()
	streams := newUpstream(t, []string{"streams.test"}, http.HandlerFunc(streamHandler))
	source := sourceUpstream(t)
	w := startReplicasOf(t, srv, n, fmt.Sprintf(replicaRules, streams.Addr(), source.Addr()))
	w.streams, w.source = streams, source
	return w
}

// startReplicasOf starts n Redis-backed replicas of rules over srv, with
// extra environment. The first makes the keys; the others get copies
// before they start.
func startReplicasOf(t *testing.T, srv *redistest.Server, n int, rules string, extra ...string) *world3 {
	t.Helper()
	w := &world3{redis: srv, password: srv.Password}
	// Registered first, so it runs after every replica stopped: no
	// replica printed the Redis password.
	t.Cleanup(func() {
		for i, r := range w.rs {
			if strings.Contains(r.stdout.String()+r.stderr.String(), srv.Password) {
				t.Errorf("replica %d printed the Redis password", i)
			}
		}
	})
	redisEnv := []string{"KEYHOLE_REDIS_URL=" + srv.URL()}
	if srv.CAFile != "" {
		redisEnv = append(redisEnv, "KEYHOLE_REDIS_CA_FILE="+srv.CAFile)
	}
	env := append([]string{"KEYHOLE_ADMIN_LISTEN=127.0.0.1:0", "KEYHOLE_REDIS_STALE=2s", "BILLING_TOKEN=" + billingToken}, redisEnv...)
	env = append(env, extra...)
	for i := range n {
		var k *keyhole
		if i == 0 {
			k = startKeyhole(t, rules, env...)
		} else {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range keyFiles {
				b, err := os.ReadFile(filepath.Join(w.rs[0].StateDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			k = startKeyhole(t, rules, append(env, "KEYHOLE_STATE_DIR="+dir)...)
			k.StateDir, k.CAFile = dir, filepath.Join(dir, "ca.pem")
		}
		w.rs = append(w.rs, &replica{keyhole: k, redisEnv: redisEnv})
	}
	return w
}

// cli runs a keyhole command with r's state dir, rules and Redis.
func (r *replica) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	env := append([]string{"KEYHOLE_STATE_DIR=" + r.StateDir, "KEYHOLE_RULES=" + r.Rules}, r.redisEnv...)
	stdout, stderr, code := runStdin(t, env, stdin, args...)
	if code != 0 {
		t.Fatalf("keyhole %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return strings.TrimSpace(stdout)
}

var adminLine = regexp.MustCompile(`admin_addr=(\S+)`)

// ready is the status of r's /readyz.
func (r *replica) ready(t *testing.T) int {
	t.Helper()
	m := adminLine.FindStringSubmatch(r.stderr.String())
	if m == nil {
		t.Fatal("the replica logged no admin address")
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}).Get("http://" + m[1] + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// send asks r for <<name>> at api.source.test as billing with token.
func (r *replica) send(t *testing.T, name, token string) response {
	t.Helper()
	return goClient{}.Do(t, r.keyhole, withProxyAuth(request{URL: "https://api.source.test/v1/x",
		Header: [][2]string{{"Authorization", "Bearer <<" + name + ">>"}}}, "billing", token))
}

// plain asks r for a plain-HTTP URL as billing with token: a refusal of
// the token comes back whole (status, headers, JSON body).
func (r *replica) plain(t *testing.T, token string) response {
	t.Helper()
	return goClient{}.Do(t, r.keyhole, withProxyAuth(request{URL: "http://plain.test/x"}, "billing", token))
}

// within polls cond until it holds or limit passes.
func within(t *testing.T, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// rawRedis is a client of the test's Redis, to look at what it holds.
func (w *world3) rawRedis(t *testing.T) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(w.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	if w.redis.CAFile != "" {
		t.Fatal("rawRedis: plain servers only")
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestReplicasShareState runs three replicas on a rediss:// Redis with an
// ACL user: a secret set through A is served by B and C, and a token
// revoked on A ends its streams on A, B and C (inside open tunnels) and is
// refused everywhere.
func TestReplicasShareState(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true, User: "keyhole"})
	w := startReplicas(t, srv, 3)
	a, b, c := w.rs[0], w.rs[1], w.rs[2]

	w.rs[0].cli(t, storeValue+"\n", "secret", "set", "STORED")
	for i, r := range []*replica{b, c} {
		took := within(t, fmt.Sprintf("replica %d serves the secret set through A", i+1), 10*time.Second, func() bool {
			return r.send(t, "STORED", billingToken).Status == http.StatusOK
		})
		t.Logf("replica %d served the new secret after %v", i+1, took.Round(time.Millisecond))
		assertInjectedBy(t, r, w.source, "STORED", storeValue)
	}

	token := a.cli(t, "", "token", "mint", "--agent", "billing", "--ttl", "10m", "--id", "shared-job")
	for i, r := range w.rs {
		if got := r.send(t, "STRIPE", token).Status; got != http.StatusOK {
			t.Fatalf("replica %d refused the minted token before the revoke: %d", i, got)
		}
	}
	var ended []<-chan struct{}
	for _, r := range w.rs {
		ended = append(ended, openStream(t, r.keyhole, "https://streams.test/sse", token))
	}
	start := time.Now()
	a.cli(t, "", "token", "revoke", "shared-job")
	for i, e := range ended {
		select {
		case <-e:
			t.Logf("replica %d ended the stream %v after the revoke command returned", i, time.Since(start).Round(time.Millisecond))
		case <-time.After(4 * time.Second): // generous on a loaded machine
			t.Fatalf("replica %d: the stream still runs 4s after its token was revoked on A", i)
		}
	}
	for i, r := range w.rs {
		assertRefusal(t, r.plain(t, token), http.StatusProxyAuthRequired, "token_revoked", "")
		if got := r.send(t, "STRIPE", billingToken).Status; got != http.StatusOK {
			t.Errorf("replica %d: the static token got %d after the revoke", i, got)
		}
	}
}

// assertInjectedBy checks that r injected want for <<name>> into up.
func assertInjectedBy(t *testing.T, r *replica, up *upstream, name, want string) {
	t.Helper()
	before := up.Hits()
	resp := r.send(t, name, billingToken)
	if resp.Status != http.StatusOK {
		t.Fatalf("%s: got %d; body: %s%s", name, resp.Status, resp.Body, resp.Err)
	}
	if up.Hits() != before+1 || up.Last(t).Header.Get("Authorization") != "Bearer "+want {
		t.Fatalf("%s: the upstream did not receive the real value", name)
	}
	assertNoSecretIn(t, "response", resp.Body+fmt.Sprint(resp.Header))
}

// TestReplicasRedisOutage kills Redis under three replicas: they turn
// not-ready after KEYHOLE_REDIS_STALE, refuse minted tokens with 407
// state_unavailable (and end their streams), keep serving static tokens
// and stored secrets from their copies, and recover when Redis comes back
// empty, and after FLUSHALL, without losing a revocation or a secret.
func TestReplicasRedisOutage(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	w := startReplicas(t, srv, 3)
	a, b, c := w.rs[0], w.rs[1], w.rs[2]
	raw := w.rawRedis(t)
	ctx := context.Background()

	a.cli(t, storeValue+"\n", "secret", "set", "STORED")
	within(t, "C serves the stored secret", 10*time.Second, func() bool { return c.send(t, "STORED", billingToken).Status == http.StatusOK })
	if holdsText(t, raw, storeValue) {
		t.Fatal("Redis holds the stored value in the clear")
	}
	live := a.cli(t, "", "token", "mint", "--agent", "billing", "--ttl", "10m", "--id", "live-job")
	gone := a.cli(t, "", "token", "mint", "--agent", "billing", "--ttl", "10m", "--id", "gone-job")
	a.cli(t, "", "token", "revoke", "gone-job")
	within(t, "C refuses the revoked token", 10*time.Second, func() bool { return c.plain(t, gone).Status == http.StatusProxyAuthRequired })
	stream := openStream(t, b.keyhole, "https://streams.test/sse", live)

	srv.Kill()
	for i, r := range w.rs {
		took := within(t, fmt.Sprintf("replica %d turns not-ready", i), 20*time.Second, func() bool { return r.ready(t) == http.StatusServiceUnavailable })
		t.Logf("replica %d not ready %v after Redis was killed", i, took.Round(time.Millisecond))
	}
	select {
	case <-stream:
	case <-time.After(10 * time.Second):
		t.Fatal("a minted token's stream still runs while the shared state is stale")
	}
	resp := c.plain(t, live)
	assertRefusal(t, resp, http.StatusProxyAuthRequired, "state_unavailable", "")
	if resp.Header.Get("Proxy-Authenticate") == "" {
		t.Error("the state_unavailable refusal has no Proxy-Authenticate")
	}
	c.WaitAudit(t, func(r map[string]any) bool { return r["reason"] == "state_unavailable" })
	assertRefusal(t, c.plain(t, gone), http.StatusProxyAuthRequired, "token_revoked", "")
	for i, r := range w.rs {
		if got := r.send(t, "STRIPE", billingToken).Status; got != http.StatusOK {
			t.Errorf("replica %d: the static token got %d while Redis is down", i, got)
		}
	}
	assertInjectedBy(t, b, w.source, "STORED", storeValue)

	srv.Restart() // empty
	for i, r := range w.rs {
		within(t, fmt.Sprintf("replica %d ready again", i), 30*time.Second, func() bool { return r.ready(t) == http.StatusOK })
	}
	within(t, "the minted token works again", 10*time.Second, func() bool { return c.send(t, "STRIPE", live).Status == http.StatusOK })
	assertRefusal(t, c.plain(t, gone), http.StatusProxyAuthRequired, "token_revoked", "")
	recovered := func() bool {
		ok, err := raw.SIsMember(ctx, "keyhole:revoked", "gone-job").Result()
		n, err2 := raw.HLen(ctx, "keyhole:store").Result()
		return err == nil && err2 == nil && ok && n == 1
	}
	within(t, "the replicas wrote the revocation and the store back to the empty Redis", 30*time.Second, recovered)

	if err := raw.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	within(t, "the replicas wrote the revocation and the store back after FLUSHALL", 30*time.Second, recovered)
	assertRefusal(t, c.plain(t, gone), http.StatusProxyAuthRequired, "token_revoked", "")
	a.cli(t, "new-"+storeValue+"\n", "secret", "set", "STORED")
	within(t, "B serves the value set after the recovery", 10*time.Second, func() bool {
		before := w.source.Hits()
		if b.send(t, "STORED", billingToken).Status != http.StatusOK || w.source.Hits() != before+1 {
			return false
		}
		return w.source.Last(t).Header.Get("Authorization") == "Bearer new-"+storeValue
	})
}

// holdsText reports whether any key or value in Redis holds text.
func holdsText(t *testing.T, c *redis.Client, text string) bool {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var vals []string
		switch typ, _ := c.Type(ctx, k).Result(); typ {
		case "hash":
			m, _ := c.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "set":
			vals, _ = c.SMembers(ctx, k).Result()
		case "string":
			v, _ := c.Get(ctx, k).Result()
			vals = []string{v}
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, text) {
				return true
			}
		}
	}
	return false
}

// TestReplicaKilledMidStream SIGKILLs one replica while streams run
// through the others: they go on, and a revocation through B still
// reaches C.
func TestReplicaKilledMidStream(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	w := startReplicas(t, srv, 3)
	a, b, c := w.rs[0], w.rs[1], w.rs[2]
	token := a.cli(t, "", "token", "mint", "--agent", "billing", "--ttl", "10m", "--id", "kill-job")
	onA := openStream(t, a.keyhole, "https://streams.test/sse", token)
	onB := openStream(t, b.keyhole, "https://streams.test/sse", token)
	onC := openStream(t, c.keyhole, "https://streams.test/sse", token)
	_ = a.cmd.Process.Kill()
	<-a.done
	select {
	case <-onA:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream through the killed replica did not end")
	}
	select {
	case <-onB:
		t.Fatal("killing A ended B's stream")
	case <-onC:
		t.Fatal("killing A ended C's stream")
	case <-time.After(2 * time.Second):
	}
	if got := c.send(t, "STRIPE", token).Status; got != http.StatusOK {
		t.Fatalf("C refused a request after A was killed: %d", got)
	}
	b.cli(t, "", "token", "revoke", token) // by token: it was minted on A
	for name, e := range map[string]<-chan struct{}{"B": onB, "C": onC} {
		select {
		case <-e:
		case <-time.After(4 * time.Second):
			t.Fatalf("%s's stream still runs 4s after the revoke through B", name)
		}
	}
}

// TestReplicaRedisRefused: a wrong Redis password or an unreachable Redis
// ends serve at start with a clear error that does not print the password.
func TestReplicaRedisRefused(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	rules := filepath.Join(dir, "keyhole.yaml")
	os.WriteFile(rules, []byte("secrets:\n  A:\n    source: env:A_KEY\n    hosts: [api.example.com]\n"), 0o600)
	wrong := "wrong-" + srv.Password
	cases := []struct{ name, url, want, password string }{
		{"wrong password", "redis://:" + wrong + "@" + srv.Addr, "WRONGPASS", wrong},
		{"unreachable", "redis://:" + srv.Password + "@127.0.0.1:1/0", "redis at redis://:xxxxx@127.0.0.1:1/0", srv.Password},
		{"not redis", "https://:" + srv.Password + "@" + srv.Addr, "want redis:// or rediss://", srv.Password},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + filepath.Join(dir, "state"), "KEYHOLE_RULES=" + rules,
				"A_KEY=x", "KEYHOLE_REDIS_URL=" + tc.url}, "serve", "--listen", "127.0.0.1:0")
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr does not say %q: %s", tc.want, stderr)
			}
			if strings.Contains(stderr, tc.password) {
				t.Error("stderr holds the Redis password")
			}
		})
	}
}

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
