// Package browsertest drives Debian's chromium, headless, for the tests of
// the hand-off pages (handoff/pages and e2e): one browser per test binary,
// a tab per test that records every request the page sends, every
// uncaught exception and every Content-Security-Policy violation.
//
// chromium trusts no test certificate blindly: a test that serves the
// pages over HTTPS pins the server's key with Options.SPKIHashes
// (--ignore-certificate-errors-spki-list), never a blanket skip.
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Timeout bounds one tab: generous, for a loaded machine.
const Timeout = 90 * time.Second

// Options tunes the browser.
type Options struct {
	// SPKIHashes are the base64 SHA-256 hashes of the public keys (see
	// SPKIHash) whose certificates chromium accepts without a trusted
	// chain. Empty: only trusted certificates (and plain http).
	SPKIHashes []string
	// HostRules maps host names to loopback addresses, as chromium's
	// --host-resolver-rules takes them: "MAP keyhole.test 127.0.0.1:8443"
	// (the port replaces the URL's). Empty: the system resolver.
	HostRules []string
}

// Browser is one running chromium.
type Browser struct {
	alloc  context.Context
	cancel context.CancelFunc
	root   context.Context // the first tab, which holds the browser
}

// Start launches chromium. It fails when chromium is not installed; see
// Missing for what a test does then.
func Start(opts Options) (*Browser, error) {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if path, err = exec.LookPath("/usr/bin/chromium"); err != nil {
			return nil, errors.New("chromium is not installed (apt-get install chromium)")
		}
	}
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		chromedp.WindowSize(800, 720),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
	)
	if os.Geteuid() == 0 {
		flags = append(flags, chromedp.NoSandbox)
	}
	if len(opts.SPKIHashes) > 0 {
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(opts.SPKIHashes, ",")))
	}
	if len(opts.HostRules) > 0 {
		flags = append(flags, chromedp.Flag("host-resolver-rules", strings.Join(opts.HostRules, ", ")))
	}
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), flags...)
	root, _ := chromedp.NewContext(alloc)
	// The first run starts the browser and ties it to its context: root,
	// not one with a timeout. A browser that cannot start fails fast.
	if err := chromedp.Do(root, chromedp.Navigate("about:blank")); err != nil {
		cancel()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	return &Browser{alloc: alloc, cancel: cancel, root: root}, nil
}

// Missing ends a test that has no browser: under CI=true it fails (CI
// must have chromium), elsewhere it skips.
func Missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("browser: %v", err)
	}
	t.Skipf("browser: %v", err)
}

// Close stops the browser.
func (b *Browser) Close() { b.cancel() }

// SPKIHash is the base64 SHA-256 of cert's public key, as chromium's
// --ignore-certificate-errors-spki-list takes it.
func SPKIHash(cert *x509.Certificate) string {
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// Request is one request a page sent.
type Request struct {
	Method, URL string
	Body        string
}

// Tab is one browser tab, closed when its test ends.
type Tab struct {
	t   testing.TB
	ctx context.Context

	mu         sync.Mutex
	requests   []Request
	exceptions []string
}

// violations collects the page's CSP violations; it runs before the
// page's own scripts (CDP scripts are not bound by the page's CSP).
const violations = `window.__csp = []; document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

// Tab opens a new tab for t.
func (b *Browser) Tab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root)
	ctx, stop := context.WithTimeout(ctx, Timeout)
	t.Cleanup(func() { stop(); cancel() })
	tab := &Tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("browser: new tab: %v", err)
	}
	if err := chromedp.Listen(ctx, tab.record); err != nil {
		t.Fatalf("browser: listen: %v", err)
	}
	tab.Do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: violations})
		return err
	}))
	return tab
}

func (tab *Tab) record(ev any) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := Request{Method: ev.Request.Method, URL: ev.Request.URL}
		for _, e := range ev.Request.PostDataEntries {
			r.Body += string(e.Bytes)
		}
		tab.requests = append(tab.requests, r)
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		tab.exceptions = append(tab.exceptions, msg)
	}
}

// Context is the tab's context, for chromedp.Run.
func (tab *Tab) Context() context.Context { return tab.ctx }

// Do runs actions in the tab; an error fails the test.
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if err := chromedp.Do(tab.ctx, actions...); err != nil {
		tab.t.Fatalf("browser: %v (page state %q)", err, tab.stateNoFail())
	}
}

// Open loads url as a new document, even when only its fragment differs
// from the page shown (which a plain navigation would not reload).
func (tab *Tab) Open(url string) {
	tab.t.Helper()
	tab.Do(chromedp.Navigate("about:blank"), chromedp.Navigate(url))
}

// Text returns the text content of the element sel.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	s, err := chromedp.Run(tab.ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		tab.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

// Eval evaluates a JavaScript expression in the page and returns its value.
func Eval[T any](tab *Tab, expr string) T {
	tab.t.Helper()
	v, err := chromedp.Run(tab.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tab.t.Fatalf("browser: evaluate: %v", err)
	}
	return v
}

// WaitState waits until the page shows its section of state (the pages'
// <section data-state=...>).
func (tab *Tab) WaitState(state string) {
	tab.t.Helper()
	tab.Do(chromedp.WaitVisible(chromedp.CSS(`section[data-state="` + state + `"]`)))
}

// State is the state the page shows now.
func (tab *Tab) State() string {
	tab.t.Helper()
	return Eval[string](tab, `document.body.dataset.state`)
}

func (tab *Tab) stateNoFail() string {
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.dataset.state || "" : ""`))
	return s
}

// Requests returns the requests the tab sent so far.
func (tab *Tab) Requests() []Request {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]Request(nil), tab.requests...)
}

// CheckClean fails the test if the page threw an uncaught exception or
// violated its Content-Security-Policy.
func (tab *Tab) CheckClean() {
	tab.t.Helper()
	tab.mu.Lock()
	exc := append([]string(nil), tab.exceptions...)
	tab.mu.Unlock()
	for _, e := range exc {
		tab.t.Errorf("browser: the page threw: %s", e)
	}
	for _, v := range Eval[[]string](tab, `window.__csp || []`) {
		tab.t.Errorf("browser: CSP violation: %s", v)
	}
}

// Screenshot saves a PNG of the page's card (its <main>) to path.
func (tab *Tab) Screenshot(path string) {
	tab.t.Helper()
	b, err := chromedp.Run(tab.ctx, chromedp.Screenshot(chromedp.CSS("main")))
	if err != nil {
		tab.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}
