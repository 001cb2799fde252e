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

	"github.com/chromedp/chromedp"

	"keyhole/handoff"
)

// The seed's whole loop through the built binary: the agent mints a key
// upstream, keyhole captures it, the agent uses it and hands it to a
// person, who reveals it in chromium; and the reverse, a person typing a
// secret into the intake page for the agent. The agent never receives a
// value: everything it receives is recorded and searched.

// seedRules has the capture rule of mintRules, an agent that may share
// what it captured with alice and ask oncall, and a handoff section whose
// recipients' webhook is hook.
const seedRules = `
agents:
  provisioner:
    token: env:PROV_TOKEN
    secrets: [STRIPE]
    share: {secrets: ["MINTED_*"], to: [alice]}
    intake: {from: [oncall]}
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.mint.test]
capture:
  - host: api.mint.test
    method: POST
    path: /v1/api_keys
    json: secret
    name: MINTED
    hosts: [api.mint.test]
    headers: [Authorization]
handoff:
  listen: 127.0.0.1:0
  base_url: https://keyhole.test
  recipients:
    alice: {webhook: "https://hooks.test:HOOKPORT/alice"}
    oncall: {webhook: "https://hooks.test:HOOKPORT/oncall"}
  max_ttl: 2h
resolve:
  api.mint.test: UPSTREAM
  echo.mint.test: UPSTREAM
  hooks.test: 127.0.0.1
`

// seedWorld is mintWorld's upstream with seedRules, alice's and oncall's
// webhook, and the agent's recorded client.
type seedWorld struct {
	*mintWorld
	hook  *webhook
	agent *recordingAgent
}

func newSeedWorld(t *testing.T) *seedWorld {
	t.Helper()
	w := &seedWorld{mintWorld: &mintWorld{}, hook: newWebhook(t)}
	w.up = newUpstream(t, []string{"api.mint.test", "echo.mint.test"}, http.HandlerFunc(w.serve))
	_, port, _ := net.SplitHostPort(w.hook.Addr())
	rules := strings.NewReplacer("UPSTREAM", w.up.Addr(), "HOOKPORT", port).Replace(seedRules)
	w.k = startKeyhole(t, rules, "PROV_TOKEN="+provToken)
	w.agent = &recordingAgent{t: t, k: w.k, name: "provisioner", token: provToken}
	return w
}

// recordingAgent sends requests through keyhole as one agent (Go's
// net/http) and keeps everything it receives: every status, header and
// body.
type recordingAgent struct {
	t           *testing.T
	k           *keyhole
	name, token string
	mu          sync.Mutex
	received    []string
}

func (a *recordingAgent) do(method, url, body string, header ...[2]string) response {
	a.t.Helper()
	resp := (goClient{}).Do(a.t, a.k, request{Method: method, URL: url, Body: body, Header: header, ProxyUser: a.name, ProxyPass: a.token})
	a.mu.Lock()
	a.received = append(a.received, fmt.Sprint(resp.Status, resp.Header, resp.Body, resp.Err))
	a.mu.Unlock()
	if resp.Err != "" {
		a.t.Fatalf("%s %s: %s", method, url, resp.Err)
	}
	return resp
}

// assertNeverReceived fails if anything the agent received holds one of
// values (named what, for the message).
func (a *recordingAgent) assertNeverReceived(what string, values ...string) {
	a.t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, got := range a.received {
		for _, v := range values {
			if strings.Contains(got, v) {
				a.t.Errorf("response #%d the agent received holds %s", i, what)
			}
		}
	}
}

// TestHandoffSeedLoop is the seed's loop as one test: the agent POSTs to
// a capture-rule endpoint of an upstream that mints a key and gets
// <<MINTED_id>>; uses it toward the allowed host (the upstream sees the
// real key); shares it with alice; alice's webhook receives the link;
// chromium reveals the real key; and nothing the agent received (every
// header and body) holds the key or the link.
func TestHandoffSeedLoop(t *testing.T) {
	w := newSeedWorld(t)
	b := pagesBrowser(t, w.k)

	resp := w.agent.do(http.MethodPost, "https://api.mint.test/v1/api_keys", "{}", [2]string{"Authorization", "Bearer <<STRIPE>>"})
	var doc map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &doc); resp.Status != http.StatusOK || err != nil {
		t.Fatalf("minting: got %d (%v)", resp.Status, err)
	}
	ph, _ := doc["secret"].(string)
	if !mintedPlaceholder.MatchString(ph) {
		t.Fatalf("minting: got %s, want the placeholder of the minted key", resp.Body)
	}
	minted := w.all()
	if len(minted) != 1 {
		t.Fatalf("the upstream minted %d keys", len(minted))
	}
	key := minted[0]

	if use := w.agent.do(http.MethodGet, "https://api.mint.test/v1/charges", "", [2]string{"Authorization", "Bearer " + ph}); use.Status != http.StatusOK {
		t.Fatalf("using the placeholder: got %d %s", use.Status, use.Body)
	}
	if w.up.Last(t).Header.Get("Authorization") != "Bearer "+key {
		t.Fatal("the upstream did not receive the minted key for the placeholder")
	}

	name := strings.Trim(ph, "<>")
	created := w.agent.do(http.MethodPost, "https://keyhole.internal/v1/shares",
		`{"secret":"`+name+`","to":"alice","note":"the key for the new billing job"}`)
	var c struct {
		ID, To    string
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(created.Body), &c); created.Status != http.StatusCreated || err != nil || c.ID == "" || c.To != "alice" {
		t.Fatalf("sharing: got %d %s", created.Status, created.Body)
	}
	d := w.hook.wait(t, 0)
	id, fragment := splitLink(t, d.Link, handoff.SharePath)
	w.k.AlsoSecret(d.Link, fragment)
	if id != c.ID {
		t.Errorf("alice's link is for share %s, the agent was told %s", id, c.ID)
	}

	tab := b.Tab(t)
	tab.Open(d.Link)
	tab.Do(chromedp.WaitEnabled(chromedp.ID("reveal")), chromedp.Click(chromedp.ID("reveal")))
	tab.WaitState("value")
	if tab.Text("#value") != key {
		t.Fatal("the browser does not reveal the minted key")
	}
	tab.Do(chromedp.Reload())
	tab.WaitState("viewed")
	tab.CheckClean()
	checkPagesSentNowhere(t, tab, key)

	w.agent.assertNeverReceived("the minted key", key)
	w.agent.assertNeverReceived("the link or its key", d.Link, fragment)
	for _, ev := range []string{"capture", "share_created", "share_viewed"} {
		w.k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == ev })
	}
}

// TestHandoffBrowserIntake: the agent asks oncall for SENDGRID for two
// hosts; oncall's webhook gets the link; in chromium the human sees who
// asks and why, unticks one host and sends; the agent's poll turns
// fulfilled with <<SENDGRID>>, which keyhole injects toward the host
// left ticked and refuses toward the other. A second request is declined
// on the page and the agent's poll says so. The agent never receives the
// value.
func TestHandoffBrowserIntake(t *testing.T) {
	w := newSeedWorld(t)
	b := pagesBrowser(t, w.k)
	const value = "SG.intake-e2e-TEST-value.0123456789abcdef"
	w.k.AlsoSecret(value)

	ask := func(name string) handoff.IntakeStatus {
		t.Helper()
		resp := w.agent.do(http.MethodPost, "https://keyhole.internal/v1/intake",
			`{"name":"`+name+`","hosts":["api.mint.test","echo.mint.test"],"from":"oncall","reason":"send the weekly report mail"}`)
		var st handoff.IntakeStatus
		if err := json.Unmarshal([]byte(resp.Body), &st); resp.Status != http.StatusCreated || err != nil || st.Status != handoff.StatusPending {
			t.Fatalf("asking for %s: got %d %s", name, resp.Status, resp.Body)
		}
		return st
	}
	poll := func(id string, want handoff.Status) handoff.IntakeStatus {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st handoff.IntakeStatus
			resp := w.agent.do(http.MethodGet, "https://keyhole.internal/v1/intake/"+id, "")
			if err := json.Unmarshal([]byte(resp.Body), &st); err == nil && st.Status == want {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("the intake is %s (%d %s), want %s", st.Status, resp.Status, resp.Body, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	var links []string // every link and fragment oncall received
	st := ask("SENDGRID")
	d := w.hook.wait(t, 0)
	_, fragment := splitLink(t, d.Link, handoff.IntakePath)
	w.k.AlsoSecret(d.Link, fragment)
	links = append(links, d.Link, fragment)
	tab := b.Tab(t)
	tab.Open(d.Link)
	tab.Do(chromedp.WaitEnabled(chromedp.ID("send")))
	for sel, want := range map[string]string{"#agent": "provisioner", "#name": "SENDGRID", "#reason": "send the weekly report mail"} {
		if got := tab.Text(sel); got != want {
			t.Errorf("%s: got %q, want %q", sel, got, want)
		}
	}
	tab.Do(chromedp.Click(chromedp.CSS(`input[value="echo.mint.test"]`)), chromedp.SendKeys(chromedp.ID("secret"), value), chromedp.Click(chromedp.ID("send")))
	tab.WaitState("sent")
	tab.CheckClean()
	checkPagesSentNowhere(t, tab, value)

	done := poll(st.ID, handoff.StatusFulfilled)
	if done.Placeholder != "<<SENDGRID>>" || len(done.Hosts) != 1 || done.Hosts[0] != "api.mint.test" {
		t.Fatalf("fulfilled: got placeholder %q hosts %v", done.Placeholder, done.Hosts)
	}
	if use := w.agent.do(http.MethodGet, "https://api.mint.test/v3/mail/send", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"}); use.Status != http.StatusOK {
		t.Fatalf("using <<SENDGRID>>: got %d %s", use.Status, use.Body)
	}
	if w.up.Last(t).Header.Get("Authorization") != "Bearer "+value {
		t.Fatal("the upstream did not receive the value typed on the page")
	}
	hits := w.up.Hits()
	refused := w.agent.do(http.MethodGet, "https://echo.mint.test/v3/mail/send", "", [2]string{"Authorization", "Bearer <<SENDGRID>>"})
	assertRefusal(t, refused, http.StatusForbidden, "host_not_allowed", "SENDGRID")
	if w.up.Hits() != hits {
		t.Error("a request toward the unticked host reached the upstream")
	}
	tab.Do(chromedp.Reload())
	tab.WaitState("fulfilled")

	second := ask("MAILGUN")
	d = w.hook.wait(t, 1)
	_, fragment = splitLink(t, d.Link, handoff.IntakePath)
	w.k.AlsoSecret(d.Link, fragment)
	links = append(links, d.Link, fragment)
	tab.Open(d.Link)
	tab.Do(chromedp.WaitEnabled(chromedp.ID("decline")), chromedp.Click(chromedp.ID("decline")))
	tab.WaitState("declined")
	poll(second.ID, handoff.StatusDeclined)
	tab.CheckClean()

	w.agent.assertNeverReceived("the value typed on the page", value)
	w.agent.assertNeverReceived("a link or its capability", links...)
}
