package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/handoff"
)

// The hand-off service through the binary: the operator's `keyhole share`
// delivers a link to a recipient's webhook (a TLS server keyhole verifies),
// and a client speaking the pages' protocol, as the browser does, opens it.

// webhook is a recipient's webhook that keeps what it receives.
type webhook struct {
	*upstream
	mu  sync.Mutex
	got []handoff.Delivery
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.upstream = newUpstream(t, []string{"hooks.test"}, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var d handoff.Delivery
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if r.Method != http.MethodPost || json.Unmarshal(body, &d) != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got = append(w.got, d)
		w.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	return w
}

// wait returns delivery n (0-based), waiting for it.
func (w *webhook) wait(t *testing.T, n int) handoff.Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		if len(w.got) > n {
			d := w.got[n]
			w.mu.Unlock()
			return d
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the webhook received no delivery #%d", n)
	return handoff.Delivery{}
}

// handoffRules is a rules file with one secret, STRIPE, and a handoff
// section whose recipient alice's webhook is w (pinned to loopback).
func handoffRules(w *webhook, extra string) string {
	_, port, _ := net.SplitHostPort(w.Addr())
	return `secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.com]
handoff:
  listen: 127.0.0.1:0
  base_url: https://keyhole.test
  recipients:
    alice: {webhook: "https://hooks.test:` + port + `/alice"}
  max_ttl: 2h
resolve:
  hooks.test: 127.0.0.1
` + extra
}

var handoffLine = regexp.MustCompile(`msg="handoff listener" handoff_addr=(\S+)`)

// handoffAddr is the address of k's handoff listener, from its log.
func handoffAddr(t *testing.T, k *keyhole) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := handoffLine.FindStringSubmatch(k.stderr.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no handoff listener in keyhole's log:\n%s", k.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pagesClient speaks to k's handoff listener as a browser would: TLS
// verified against keyhole's CA for base_url's host, dialed at the
// listener's address.
type pagesClient struct {
	t    *testing.T
	http *http.Client
}

func newPagesClient(t *testing.T, k *keyhole) *pagesClient {
	t.Helper()
	addr := handoffAddr(t, k)
	pem, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "keyhole.test"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &pagesClient{t: t, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// do sends a request to the page path and decodes a JSON answer into out.
func (c *pagesClient) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, "https://keyhole.test"+path, r)
	req.Header.Set("User-Agent", "e2e-pages-client")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// splitLink returns the id and fragment of a link of kind prefix.
func splitLink(t *testing.T, link, prefix string) (string, string) {
	t.Helper()
	rest, ok := strings.CutPrefix(link, "https://keyhole.test"+prefix)
	id, frag, ok2 := strings.Cut(rest, "#")
	if !ok || !ok2 {
		t.Fatal("the link is not BASE_URL" + prefix + "ID#FRAGMENT")
	}
	return id, frag
}

// TestHandoffOperatorShare: `keyhole share STRIPE --to alice` delivers a
// link to alice's webhook; opening it consumes nothing, the reveal POST
// returns a ciphertext that the link's key opens to the secret, and a
// replay finds it viewed. `share ls` lists it, `--print` prints a link,
// and `share revoke` kills one.
func TestHandoffOperatorShare(t *testing.T) {
	hook := newWebhook(t)
	k := startKeyhole(t, handoffRules(hook, ""))
	pages := newPagesClient(t, k)
	env := []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "STRIPE_KEY=" + stripeValue,
		"KEYHOLE_UPSTREAM_CA_FILE=" + upstreamCA(t).pemPath}

	out, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--note", "for the migration")
	if code != 0 {
		t.Fatalf("share: exit %d: %s", code, stderr)
	}
	d := hook.wait(t, 0)
	id, key := splitLink(t, d.Link, handoff.SharePath)
	k.AlsoSecret(d.Link, key)
	if out != "" || strings.Contains(stderr, key) {
		t.Errorf("share without --print wrote the link")
	}
	if d.Kind != "share" || !strings.Contains(d.Text, "STRIPE") || !strings.Contains(d.Text, "for the migration") {
		t.Errorf("got delivery kind %q text %q", d.Kind, d.Text)
	}

	var meta handoff.ShareMeta
	for range 2 { // looking consumes nothing
		if st := pages.do("GET", "/s/"+id+"/meta", nil, &meta); st != http.StatusOK || meta.Status != handoff.StatusReady || meta.ViewsLeft != 1 {
			t.Fatalf("meta: got %d %+v", st, meta)
		}
	}
	var rev handoff.RevealResponse
	if st := pages.do("POST", "/s/"+id+"/reveal", nil, &rev); st != http.StatusOK {
		t.Fatalf("reveal: got %d", st)
	}
	ct, err := handoff.Decode(rev.Ciphertext, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := handoff.OpenShare(id, key, ct)
	if err != nil || !v.Equal(stripeValue) {
		t.Fatalf("the revealed ciphertext does not open to the secret (%v)", err)
	}
	var gone handoff.GoneResponse
	if st := pages.do("POST", "/s/"+id+"/reveal", nil, &gone); st != http.StatusGone || gone.Status != handoff.StatusViewed {
		t.Errorf("replayed reveal: got %d %+v, want 410 viewed", st, gone)
	}
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "share_viewed" })
	if rec["id"] != id || rec["secret"] != "STRIPE" || rec["user_agent"] != "e2e-pages-client" || rec["viewer_addr"] == "" {
		t.Errorf("share_viewed: got %v", rec)
	}

	// --print: the link on stdout, nothing delivered; then revoked.
	printed, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--print", "--views", "3", "--expires", "30m")
	if code != 0 {
		t.Fatalf("share --print: exit %d: %s", code, stderr)
	}
	printed = strings.TrimSpace(printed)
	id2, key2 := splitLink(t, printed, handoff.SharePath)
	k.AlsoSecret(printed, key2)
	ls, _, _ := runKeyhole(t, env, "share", "ls")
	if !strings.Contains(ls, id) || !strings.Contains(ls, id2) || !strings.Contains(ls, "viewed") || !strings.Contains(ls, "3/3") {
		t.Errorf("share ls: got %q", ls)
	}
	assertNoSecretIn(t, "share ls", ls)
	if strings.Contains(ls, key) || strings.Contains(ls, key2) {
		t.Errorf("share ls prints a key")
	}
	if _, stderr, code := runKeyhole(t, env, "share", "revoke", id2); code != 0 {
		t.Fatalf("share revoke: exit %d: %s", code, stderr)
	}
	if st := pages.do("POST", "/s/"+id2+"/reveal", nil, &gone); st != http.StatusGone || gone.Status != handoff.StatusRevoked {
		t.Errorf("a revoked share: got %d %+v, want 410 revoked", st, gone)
	}
	hook.mu.Lock()
	n := len(hook.got)
	hook.mu.Unlock()
	if n != 1 {
		t.Errorf("got %d deliveries, want 1 (--print delivers nothing)", n)
	}

	// An expired link: 410 expired, and its meta says so.
	short, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--print", "--expires", "1s")
	if code != 0 {
		t.Fatalf("share --expires 1s: exit %d: %s", code, stderr)
	}
	id3, key3 := splitLink(t, strings.TrimSpace(short), handoff.SharePath)
	k.AlsoSecret(strings.TrimSpace(short), key3)
	deadline := time.Now().Add(10 * time.Second)
	for pages.do("GET", "/s/"+id3+"/meta", nil, &meta); meta.Status != handoff.StatusExpired && time.Now().Before(deadline); pages.do("GET", "/s/"+id3+"/meta", nil, &meta) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := pages.do("POST", "/s/"+id3+"/reveal", nil, &gone); st != http.StatusGone || gone.Status != handoff.StatusExpired {
		t.Errorf("an expired share: got %d %+v, want 410 expired", st, gone)
	}

	// Bad input from the operator: an unknown recipient, too many views.
	for _, args := range [][]string{{"share", "STRIPE", "--to", "mallory"}, {"share", "STRIPE", "--to", "alice", "--views", "1000"}, {"share", "STRIPE", "--to", "alice", "--expires", "3h"}} {
		if _, stderr, code := runKeyhole(t, env, args...); code == 0 {
			t.Errorf("%v: exit 0, want a refusal", args)
		} else {
			assertNoSecretIn(t, "share error", stderr)
		}
	}
}
