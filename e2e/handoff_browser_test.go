package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keyhole/handoff"
	"keyhole/handoff/pages/browsertest"
)

// The hand-off pages through the built binary, in Debian's chromium: the
// handoff listener presents a leaf of keyhole's CA for base_url's host
// (keyhole.test), which chromium accepts only because the test pins that
// leaf's key (never a blanket skip), and reaches through a host mapping
// to the listener's loopback address.

// pagesBrowser starts chromium for k's handoff listener: pinned to the
// key of the leaf the listener presents, with keyhole.test mapped to it.
func pagesBrowser(t *testing.T, k *keyhole) *browsertest.Browser {
	t.Helper()
	addr := handoffAddr(t, k)
	pem, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "keyhole.test"}}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("the handoff listener's certificate: %v", err)
	}
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	conn.Close()
	b, err := browsertest.Start(browsertest.Options{
		SPKIHashes: []string{browsertest.SPKIHash(leaf)},
		HostRules:  []string{"MAP keyhole.test " + addr},
	})
	if err != nil {
		browsertest.Missing(t, err)
	}
	t.Cleanup(b.Close)
	return b
}

// checkPagesSentNowhere fails if the tab sent a request anywhere but
// keyhole's pages, or sent value in one.
func checkPagesSentNowhere(t *testing.T, tab *browsertest.Tab, value string) {
	t.Helper()
	for _, r := range tab.Requests() {
		if strings.HasPrefix(r.URL, "about:") {
			continue
		}
		if !strings.HasPrefix(r.URL, "https://keyhole.test/") {
			t.Errorf("the page sent a request elsewhere: %s", r.URL)
		}
		if strings.Contains(r.URL+r.Body, value) {
			t.Errorf("the page sent the value (%s)", r.Method)
		}
	}
}

// TestHandoffBrowserShare: `keyhole share` delivers a link to alice's
// webhook; chromium opens it (nothing consumed: the share is still ready,
// no share_viewed), Reveal shows the secret, a reload says already
// viewed, and the audit names the browser. A share that expires shows
// the expired page.
func TestHandoffBrowserShare(t *testing.T) {
	hook := newWebhook(t)
	k := startKeyhole(t, handoffRules(hook, ""))
	pages := newPagesClient(t, k)
	b := pagesBrowser(t, k)
	env := []string{"KEYHOLE_STATE_DIR=" + k.StateDir, "KEYHOLE_RULES=" + k.Rules, "STRIPE_KEY=" + stripeValue,
		"KEYHOLE_UPSTREAM_CA_FILE=" + upstreamCA(t).pemPath}
	if _, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--note", "for the billing job"); code != 0 {
		t.Fatalf("share: exit %d: %s", code, stderr)
	}
	d := hook.wait(t, 0)
	id, key := splitLink(t, d.Link, handoff.SharePath)
	k.AlsoSecret(d.Link, key)

	tab := b.Tab(t)
	tab.Open(d.Link)
	tab.Do(chromedp.WaitEnabled(chromedp.ID("reveal")))
	var meta handoff.ShareMeta
	if st := pages.do("GET", "/s/"+id+"/meta", nil, &meta); st != http.StatusOK || meta.Status != handoff.StatusReady || meta.ViewsLeft != 1 {
		t.Fatalf("after opening the page: got %d %s (%d views left), want it ready with its view", st, meta.Status, meta.ViewsLeft)
	}
	for _, r := range k.AuditRecords(t) {
		if r["event"] == "share_viewed" {
			t.Fatal("opening the page was audited as a view")
		}
	}
	if got := tab.Text("#note"); got != "for the billing job" {
		t.Errorf("the note: got %q", got)
	}
	tab.Do(chromedp.Click(chromedp.ID("reveal")))
	tab.WaitState("value")
	if tab.Text("#value") != stripeValue {
		t.Fatal("the revealed page does not show the secret")
	}
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "share_viewed" })
	if ua, _ := rec["user_agent"].(string); rec["id"] != id || !strings.Contains(ua, "Chrome") || rec["viewer_addr"] != "127.0.0.1" {
		t.Errorf("share_viewed: got %v", rec)
	}
	tab.Do(chromedp.Reload())
	tab.WaitState("viewed")
	tab.CheckClean()
	checkPagesSentNowhere(t, tab, stripeValue)

	if _, stderr, code := runKeyhole(t, env, "share", "STRIPE", "--to", "alice", "--expires", "2s"); code != 0 {
		t.Fatalf("share --expires 2s: exit %d: %s", code, stderr)
	}
	d = hook.wait(t, 1)
	id, key = splitLink(t, d.Link, handoff.SharePath)
	k.AlsoSecret(d.Link, key)
	deadline := time.Now().Add(30 * time.Second)
	for pages.do("GET", "/s/"+id+"/meta", nil, &meta); meta.Status != handoff.StatusExpired; pages.do("GET", "/s/"+id+"/meta", nil, &meta) {
		if time.Now().After(deadline) {
			t.Fatalf("the share is %s 30s after it was to expire in 2s", meta.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tab.Open(d.Link)
	tab.WaitState("expired")
	tab.CheckClean()
}
