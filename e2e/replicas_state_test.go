package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
)

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
