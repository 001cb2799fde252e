package pages

import (
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keyhole/certs"
	"keyhole/handoff"
	"keyhole/handoff/pages/browsertest"
)

// The browser tests drive chromium through the pages over httptest
// (http://127.0.0.1 is a secure context, so WebCrypto works), against the
// fake service and its real crypto.go. With -update-screenshots they also
// save the pages' screenshots the README shows, under docs/.
var updateScreenshots = flag.Bool("update-screenshots", false, "save the pages' screenshots under docs/")

var (
	browserOnce sync.Once
	browser     *browsertest.Browser
	browserErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if browser != nil {
		browser.Close()
	}
	os.Exit(code)
}

// tab opens a tab of the package's one browser.
func tab(t *testing.T) *browsertest.Tab {
	t.Helper()
	browserOnce.Do(func() { browser, browserErr = browsertest.Start(browsertest.Options{}) })
	if browserErr != nil {
		browsertest.Missing(t, browserErr)
	}
	return browser.Tab(t)
}

func screenshot(t *testing.T, tb *browsertest.Tab, name string) {
	t.Helper()
	if *updateScreenshots {
		tb.Screenshot(filepath.Join("..", "..", "docs", "handoff-"+name+".png"))
	}
}

// checkSentNowhere fails if the page sent anything but to srv, or sent
// value in any request.
func checkSentNowhere(t *testing.T, tb *browsertest.Tab, srv *httptest.Server, value string) {
	t.Helper()
	for _, r := range tb.Requests() {
		if strings.HasPrefix(r.URL, "about:") {
			continue
		}
		if !strings.HasPrefix(r.URL, srv.URL+"/") {
			t.Errorf("the page sent a request elsewhere: %s", r.URL)
		}
		if strings.Contains(r.URL+r.Body, value) {
			t.Errorf("the page sent the value (%s %s)", r.Method, strings.SplitN(r.URL, "?", 2)[0][len(srv.URL):])
		}
	}
}

// TestBrowserShare: open a share link (loading consumes nothing; the
// fragment leaves the address bar), Reveal, read the value from the page,
// reload (already viewed).
func TestBrowserShare(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	tb := tab(t)
	id, key := f.share(t, shareValue, 1, time.Hour)
	tb.Do(chromedp.Navigate(srv.URL+"/s/"+id+"#"+key), chromedp.WaitEnabled(chromedp.ID("reveal")))
	if n := f.claimCount(); n != 0 {
		t.Fatalf("loading the page claimed %d views", n)
	}
	if loc, _ := chromedp.Run(tb.Context(), chromedp.Location()); strings.Contains(loc, "#") || strings.Contains(loc, key) {
		t.Error("the key is still in the address bar")
	}
	screenshot(t, tb, "share")
	tb.Do(chromedp.Click(chromedp.ID("reveal")))
	tb.WaitState("value")
	if got := tb.Text("#value"); got != shareValue {
		t.Fatalf("the page shows %d bytes that are not the value", len(got))
	}
	if n := f.claimCount(); n != 1 {
		t.Errorf("Reveal claimed %d views, want 1", n)
	}
	screenshot(t, tb, "share-revealed")
	tb.Do(chromedp.Click(chromedp.ID("copy")))
	tb.Do(chromedp.WaitVisible(chromedp.CSS("#copied:not(:empty)")))
	tb.CheckClean()
	checkSentNowhere(t, tb, srv, shareValue)

	tb.Do(chromedp.Reload())
	tb.WaitState("viewed")
	if strings.Contains(tb.Text("body"), shareValue) {
		t.Error("the reloaded page shows the value")
	}
	screenshot(t, tb, "share-viewed")
	tb.CheckClean()
}

// TestBrowserShareEnds: an expired link, a damaged or missing key (which
// claim nothing), and a damaged ciphertext (the view is taken, the page
// says damaged, never shows a wrong value).
func TestBrowserShareEnds(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	tb := tab(t)

	expired, key := f.share(t, shareValue, 1, time.Hour)
	f.expire(expired)
	tb.Do(chromedp.Navigate(srv.URL + "/s/" + expired + "#" + key))
	tb.WaitState("expired")
	screenshot(t, tb, "share-expired")

	id, key := f.share(t, shareValue, 1, time.Hour)
	other := handoff.Encode(make([]byte, handoff.KeyBytes))
	for _, tc := range []struct{ name, fragment, state string }{
		{"other key", other, "damaged"},
		{"truncated key", key[:len(key)-3], "damaged"},
		{"not base64url", key[:len(key)-1] + "!", "damaged"},
		{"no key", "", "nokey"},
	} {
		u := srv.URL + "/s/" + id
		if tc.fragment != "" {
			u += "#" + tc.fragment
		}
		tb.Open(u)
		tb.WaitState(tc.state)
		if disabled := browsertest.Eval[bool](tb, `document.getElementById("reveal").disabled`); !disabled {
			t.Errorf("%s: Reveal is enabled", tc.name)
		}
		if tc.name == "other key" {
			screenshot(t, tb, "share-damaged")
		}
	}
	if n := f.claimCount(); n != 0 {
		t.Fatalf("a damaged link claimed %d views", n)
	}

	f.tamper(id)
	tb.Open(srv.URL + "/s/" + id + "#" + key)
	tb.Do(chromedp.WaitEnabled(chromedp.ID("reveal")), chromedp.Click(chromedp.ID("reveal")))
	tb.WaitState("damaged")
	if got := tb.Text("#value"); got != "" {
		t.Error("a damaged ciphertext showed a value")
	}
	tb.CheckClean()
	checkSentNowhere(t, tb, srv, shareValue)
}

// TestBrowserIntake: the page shows the request, the human narrows the
// hosts and sends; the fake's OpenAnswer gives the value with the hosts
// chosen; the plaintext went nowhere; a reload says already answered.
func TestBrowserIntake(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	tb := tab(t)
	const value = "SG.intake-TEST-value.0123456789"
	id, fragment := f.intake(t, "api.sendgrid.com", "smtp.sendgrid.net")
	tb.Do(chromedp.Navigate(srv.URL+"/i/"+id+"#"+fragment), chromedp.WaitEnabled(chromedp.ID("send")))
	if loc, _ := chromedp.Run(tb.Context(), chromedp.Location()); strings.Contains(loc, "#") {
		t.Error("the capability is still in the address bar")
	}
	for sel, want := range map[string]string{"#agent": "provisioner", "#name": "SENDGRID", "#reason": "send the weekly report mail"} {
		if got := tb.Text(sel); got != want {
			t.Errorf("%s: got %q, want %q", sel, got, want)
		}
	}
	tb.Do(chromedp.SendKeys(chromedp.ID("secret"), value))
	screenshot(t, tb, "intake")

	// Unticking every host is refused on the page.
	tb.Do(chromedp.Click(chromedp.CSS(`input[value="smtp.sendgrid.net"]`)), chromedp.Click(chromedp.CSS(`input[value="api.sendgrid.com"]`)),
		chromedp.Click(chromedp.ID("send")), chromedp.WaitVisible(chromedp.CSS("#problem:not(:empty)")))
	if f.intakeOf(id).Status != handoff.StatusPending {
		t.Fatal("an answer with no host was sent")
	}
	tb.Do(chromedp.Click(chromedp.CSS(`input[value="api.sendgrid.com"]`)), chromedp.Click(chromedp.ID("send")))
	tb.WaitState("sent")
	got := f.intakeOf(id)
	if !got.answered || !got.answer.Equal(value) {
		t.Fatal("the fake's OpenAnswer did not give the value typed")
	}
	if len(got.GrantedHosts) != 1 || got.GrantedHosts[0] != "api.sendgrid.com" {
		t.Errorf("granted hosts %v, want [api.sendgrid.com]", got.GrantedHosts)
	}
	screenshot(t, tb, "intake-sent")
	tb.CheckClean()
	checkSentNowhere(t, tb, srv, value)

	tb.Do(chromedp.Reload())
	tb.WaitState("fulfilled")
	tb.CheckClean()
}

// TestBrowserIntakeRefusals: a fingerprint that is not the served key's
// (nothing can be sent), a value over the limit (said on the page,
// nothing sent), and Decline.
func TestBrowserIntakeRefusals(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	tb := tab(t)
	id, fragment := f.intake(t, "api.sendgrid.com")
	capability, _, _ := strings.Cut(fragment, ".")
	_, otherPub, _ := handoff.NewIntakeKey()
	for _, tc := range []struct{ name, fragment, state string }{
		{"other fingerprint", capability + "." + handoff.Fingerprint(otherPub), "damaged"},
		{"no fingerprint", capability, "nokey"},
		{"short capability", capability[:10] + "." + fragment[len(capability)+1:], "damaged"},
	} {
		tb.Open(srv.URL + "/i/" + id + "#" + tc.fragment)
		tb.WaitState(tc.state)
		if !browsertest.Eval[bool](tb, `document.getElementById("send").disabled && document.getElementById("decline").disabled`) {
			t.Errorf("%s: Send or Decline is enabled", tc.name)
		}
	}

	tb.Open(srv.URL + "/i/" + id + "#" + fragment)
	tb.Do(chromedp.WaitEnabled(chromedp.ID("send")))
	tb.Do(chromedp.SendKeys(chromedp.ID("secret"), strings.Repeat("é", intakeMaxBytes/2+1)), chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS("#problem:not(:empty)")))
	if msg := tb.Text("#problem"); !strings.Contains(msg, "at most 64") {
		t.Errorf("the page says %q about an oversized value", msg)
	}
	tb.Do(chromedp.Click(chromedp.ID("decline")))
	tb.WaitState("declined")
	if st := f.intakeOf(id).Status; st != handoff.StatusDeclined {
		t.Errorf("status %s, want declined", st)
	}
	screenshot(t, tb, "intake-declined")
	tb.CheckClean()
	for _, r := range tb.Requests() {
		if strings.HasSuffix(r.URL, "/answer") {
			t.Errorf("the page sent an answer")
		}
	}
}

// TestBrowserTLS: the pages through Listen and Serve, as keyhole serves
// them: a leaf of keyhole's CA for base_url's host, which chromium
// accepts only because its key is pinned; the share is revealed.
func TestBrowserTLS(t *testing.T) {
	ca, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	ln, err := Listen(ListenConfig{Addr: "127.0.0.1:0", BaseURL: "https://keyhole.test:8443", CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(f, Options{}), nil) }()
	defer func() { cancel(); <-done }()
	leaf, err := ca.Leaf("keyhole.test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := browsertest.Start(browsertest.Options{
		SPKIHashes: []string{browsertest.SPKIHash(leaf.Leaf)},
		HostRules:  []string{"MAP keyhole.test " + ln.Addr().String()},
	})
	if err != nil {
		browsertest.Missing(t, err)
	}
	defer b.Close()
	tb := b.Tab(t)
	id, key := f.share(t, shareValue, 1, time.Hour)
	tb.Do(chromedp.Navigate("https://keyhole.test:8443/s/"+id+"#"+key), chromedp.WaitEnabled(chromedp.ID("reveal")), chromedp.Click(chromedp.ID("reveal")))
	tb.WaitState("value")
	if got := tb.Text("#value"); got != shareValue {
		t.Fatal("the page over TLS does not show the value")
	}
	tb.CheckClean()
}
