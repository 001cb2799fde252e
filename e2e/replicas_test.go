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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
