package handoff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/secret"
	"keyhole/store"
	"keyhole/tokens"
)

const (
	shareValue = "sk_live_handoff_test_value_0123456789"
	ownedVal   = "sk_captured_owned_value_9876543210"
)

// hook is a recipient's webhook: it keeps what it receives, and fails
// while fail is set.
type hook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []Delivery
	// fail, when set, is the status answered.
	fail int
}

func newHook(t testing.TB) *hook {
	h := &hook{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d Delivery
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail != 0 {
			w.WriteHeader(h.fail)
			return
		}
		if err := json.Unmarshal(body, &d); err != nil || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.got = append(h.got, d)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) deliveries() []Delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Delivery(nil), h.got...)
}

func (h *hook) setFail(status int) {
	h.mu.Lock()
	h.fail = status
	h.mu.Unlock()
}

// fixture is a Service over a file State and store, with one webhook for
// every recipient.
type fixture struct {
	svc       *Service
	set       *rules.Set
	state     *FileState
	store     *store.File
	hook      *hook
	audit     *bytes.Buffer
	now       time.Time
	nowMu     sync.Mutex
	refreshes int
}

func (f *fixture) clock() time.Time {
	f.nowMu.Lock()
	defer f.nowMu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.nowMu.Lock()
	f.now = f.now.Add(d)
	f.nowMu.Unlock()
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	t.Setenv("HANDOFF_TEST_VALUE", shareValue)
	t.Setenv("HANDOFF_TEST_OTHER", "other_value_not_shared_123")
	t.Setenv("HANDOFF_TEST_TOKEN", "token-provisioner-0123456789")
	h := newHook(t)
	yaml := `secrets:
  STRIPE_KEY_1:
    source: env:HANDOFF_TEST_VALUE
    hosts: [api.stripe.com]
  STRIPE_KEY_2:
    source: env:HANDOFF_TEST_OTHER
    hosts: [api.stripe.com]
  STRIPE_ADMIN:
    source: env:HANDOFF_TEST_OTHER
    hosts: [api.stripe.com]
    env: STRIPE_ADMIN_X
handoff:
  listen: 127.0.0.1:0
  base_url: https://keyhole.test:8443
  recipients:
    alice: {webhook: "` + h.srv.URL + `/alice"}
    bob: {webhook: "` + h.srv.URL + `/bob"}
    oncall: {webhook: "` + h.srv.URL + `/oncall"}
  max_ttl: 2h
agents:
  provisioner:
    token: env:HANDOFF_TEST_TOKEN
    secrets: [STRIPE_KEY_1, STRIPE_ADMIN]
    share: {secrets: ["STRIPE_KEY_*", "CAPTURED_*"], to: [alice]}
    intake: {from: [oncall]}
  reader:
    token: env:HANDOFF_TEST_TOKEN
    secrets: [STRIPE_KEY_1]
`
	set, err := rules.LoadData("k.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := OpenFileState(dir)
	if err != nil {
		t.Fatal(err)
	}
	sto, err := store.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{set: set, state: st, store: sto, hook: h, audit: &bytes.Buffer{}, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	st.Now = f.clock
	var auditMu sync.Mutex
	f.svc, err = New(Config{
		State: st, Store: sto, Rules: func() *rules.Set { return set },
		RefreshStored: func(context.Context) error { f.refreshes++; return nil },
		Audit:         audit.New(lockedWriter{&auditMu, f.audit}),
		Client:        h.srv.Client(), Tries: 3, Backoff: time.Millisecond, Now: f.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) id(name string) agentauth.Identity {
	return agentauth.Identity{Agent: f.set.Agents[name], Verified: true}
}

// call sends an API request as agent and returns the status and body, or
// the refusal.
func (f *fixture) call(t testing.TB, ident agentauth.Identity, method, path, body string) (int, []byte, *inject.Refusal) {
	t.Helper()
	r := httptest.NewRequest(method, "https://keyhole.internal"+path, strings.NewReader(body))
	w := httptest.NewRecorder()
	if ref := f.svc.ServeAgent(w, r, ident); ref != nil {
		if w.Body.Len() != 0 || len(w.Header()) != 0 {
			t.Errorf("a refusal came with a written answer")
		}
		return 0, nil, ref
	}
	return w.Code, w.Body.Bytes(), nil
}

// linkParts splits a delivered share link into its id and key.
func linkParts(t testing.TB, link, prefix string) (id, frag string) {
	t.Helper()
	rest, ok := strings.CutPrefix(link, "https://keyhole.test:8443"+prefix)
	if !ok {
		t.Fatalf("the link does not start with the base URL and %s", prefix)
	}
	id, frag, ok = strings.Cut(rest, "#")
	if !ok {
		t.Fatal("the link has no fragment")
	}
	return id, frag
}

func TestShareFlow(t *testing.T) {
	f := newFixture(t)
	status, body, ref := f.call(t, f.id("provisioner"), "POST", "/v1/shares", `{"secret":"STRIPE_KEY_1","to":"alice","views":2,"expires_in":"30m","note":"for the billing migration"}`)
	if ref != nil {
		t.Fatalf("got refusal %v", ref)
	}
	if status != http.StatusCreated {
		t.Fatalf("got status %d, want 201", status)
	}
	var c Created
	if err := json.Unmarshal(body, &c); err != nil || c.ID == "" || c.To != "alice" || !c.ExpiresAt.Equal(f.now.Add(30*time.Minute)) {
		t.Fatalf("got %s (%v)", body, err)
	}
	got := f.hook.deliveries()
	if len(got) != 1 {
		t.Fatalf("got %d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.Kind != "share" || !strings.Contains(d.Text, "STRIPE_KEY_1") || !strings.Contains(d.Text, "billing migration") || strings.Contains(d.Text, d.Link) {
		t.Errorf("got delivery text %q kind %q", d.Text, d.Kind)
	}
	if strings.Contains(string(body), d.Link) || strings.Contains(string(body), "#") {
		t.Errorf("the agent's answer holds the link")
	}
	id, key := linkParts(t, d.Link, SharePath)
	if id != c.ID {
		t.Errorf("got link id %q, want %q", id, c.ID)
	}
	meta, err := f.svc.ShareMeta(context.Background(), id)
	if err != nil || meta.Status != StatusReady || meta.ViewsLeft != 2 || meta.Note != "for the billing migration" {
		t.Fatalf("got meta %+v, %v", meta, err)
	}
	kb, _ := Decode(key, KeyBytes)
	if Encode(KeyCheck(kb)) != meta.KeyCheck {
		t.Errorf("the key check does not match the link's key")
	}
	for i, wantLeft := range []int{1, 0} {
		rev, err := f.svc.Reveal(context.Background(), id, Viewer{Addr: "192.0.2.7:5555", UserAgent: "Mozilla/5.0 test"})
		if err != nil {
			t.Fatalf("reveal %d: %v", i, err)
		}
		if rev.ViewsLeft != wantLeft {
			t.Errorf("reveal %d: got views_left %d, want %d", i, rev.ViewsLeft, wantLeft)
		}
		ct, _ := Decode(rev.Ciphertext, 0)
		v, err := OpenShare(id, key, ct)
		if err != nil || !v.Equal(shareValue) {
			t.Fatalf("reveal %d: the value did not open to the shared secret (%v)", i, err)
		}
	}
	// Replaying the reveal POST: gone, viewed.
	if _, err := f.svc.Reveal(context.Background(), id, Viewer{}); !isGone(err, StatusViewed) {
		t.Errorf("replayed reveal: got %v, want gone (viewed)", err)
	}
	if m, _ := f.svc.ShareMeta(context.Background(), id); m.Status != StatusViewed || m.KeyCheck != "" {
		t.Errorf("after the last view: got %+v", m)
	}
	log := f.audit.String()
	for _, want := range []string{`"event":"share_created"`, `"event":"share_viewed"`, `"viewer_addr":"192.0.2.7:5555"`, `"user_agent":"Mozilla/5.0 test"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the audit lacks %s", want)
		}
	}
	assertClean(t, f.audit.String(), shareValue, d.Link, key)
}

func isGone(err error, want Status) bool {
	var g *GoneError
	return errors.As(err, &g) && g.Status == want && errors.Is(err, ErrGone)
}

// assertClean fails if text holds any of the secrets (without printing them).
func assertClean(t testing.TB, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the text holds secret #%d", i)
		}
	}
}

func TestSharePolicy(t *testing.T) {
	f := newFixture(t)
	if err := f.store.Put(context.Background(), store.Entry{Name: "CAPTURED_A", Value: secret.FromString(ownedVal), Origin: store.OriginCaptured, Owner: "provisioner", Policy: &store.Policy{Hosts: []string{"api.stripe.com"}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Put(context.Background(), store.Entry{Name: "CAPTURED_B", Value: secret.FromString(ownedVal), Origin: store.OriginCaptured, Owner: "reader", Policy: &store.Policy{Hosts: []string{"api.stripe.com"}}}); err != nil {
		t.Fatal(err)
	}
	key, _ := tokens.GenerateKey()
	narrow, err := tokens.Mint(key, "provisioner", "", tokens.Restriction{TTL: time.Hour, Secrets: []string{"STRIPE_ADMIN"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	grant, err := tokens.Verify(key, narrow, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	narrowID := f.id("provisioner")
	narrowID.Grant = grant
	for _, tc := range []struct {
		name   string
		agent  agentauth.Identity
		body   string
		reason inject.Reason // "" means 201
	}{
		{"allowed", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice"}`, ""},
		{"owned captured value", f.id("provisioner"), `{"secret":"CAPTURED_A","to":"alice"}`, ""},
		{"another agent's captured value", f.id("provisioner"), `{"secret":"CAPTURED_B","to":"alice"}`, inject.ShareNotAllowed},
		{"not in share.secrets", f.id("provisioner"), `{"secret":"STRIPE_ADMIN","to":"alice"}`, inject.ShareNotAllowed},
		{"matches share.secrets but not the agent's", f.id("provisioner"), `{"secret":"STRIPE_KEY_2","to":"alice"}`, inject.ShareNotAllowed},
		{"no such secret", f.id("provisioner"), `{"secret":"STRIPE_KEY_9","to":"alice"}`, inject.ShareNotAllowed},
		{"the token's grant forbids it", narrowID, `{"secret":"STRIPE_KEY_1","to":"alice"}`, inject.ShareNotAllowed},
		{"recipient not in share.to", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"bob"}`, inject.ShareNotAllowed},
		{"unknown recipient", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"mallory"}`, inject.ShareNotAllowed},
		{"agent without share field", f.id("reader"), `{"secret":"STRIPE_KEY_1","to":"alice"}`, inject.ShareNotAllowed},
		{"anonymous", agentauth.Identity{}, `{"secret":"STRIPE_KEY_1","to":"alice"}`, inject.ShareNotAllowed},
		{"views 0 means 1", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","views":0}`, ""},
		{"views -1", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","views":-1}`, inject.BadRequest},
		{"views 1000", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","views":1000}`, inject.BadRequest},
		{"views MaxViews", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","views":10}`, ""},
		{"expires beyond max_ttl", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","expires_in":"3h"}`, inject.BadRequest},
		{"expires at max_ttl", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","expires_in":"2h"}`, ""},
		{"expires not a duration", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","expires_in":"tomorrow"}`, inject.BadRequest},
		{"note too long", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","note":"` + strings.Repeat("n", MaxNote+1) + `"}`, inject.BadRequest},
		{"note with a line break", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","note":"a\nb"}`, inject.BadRequest},
		{"unknown field", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice","link":"x"}`, inject.BadRequest},
		{"not JSON", f.id("provisioner"), `secret=STRIPE_KEY_1`, inject.BadRequest},
		{"two JSON values", f.id("provisioner"), `{"secret":"STRIPE_KEY_1","to":"alice"}{}`, inject.BadRequest},
		{"missing to", f.id("provisioner"), `{"secret":"STRIPE_KEY_1"}`, inject.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.hook.deliveries())
			status, _, ref := f.call(t, tc.agent, "POST", "/v1/shares", tc.body)
			switch {
			case tc.reason == "" && ref != nil:
				t.Fatalf("got refusal %s (%s), want 201", ref.Reason, ref.Message)
			case tc.reason == "" && status != http.StatusCreated:
				t.Fatalf("got status %d, want 201", status)
			case tc.reason != "" && (ref == nil || ref.Reason != tc.reason):
				t.Fatalf("got %v (status %d), want refusal %s", ref, status, tc.reason)
			}
			if tc.reason != "" && len(f.hook.deliveries()) != before {
				t.Errorf("a refused share was delivered")
			}
			if ref != nil {
				assertClean(t, ref.Message, shareValue, ownedVal)
			}
		})
	}
	// The owned captured value was delivered sealed: open it.
	for _, d := range f.hook.deliveries() {
		id, key := linkParts(t, d.Link, SharePath)
		sh, err := f.state.GetShare(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if sh.Secret != "CAPTURED_A" {
			continue
		}
		if v, err := OpenShare(id, key, sh.Ciphertext); err != nil || !v.Equal(ownedVal) {
			t.Errorf("the captured share did not open to its value (%v)", err)
		}
	}
}

func TestAPIPaths(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path string
		reason       inject.Reason
	}{
		{"GET", "/v1/shares", inject.BadRequest},
		{"GET", "/v1/intake", inject.BadRequest},
		{"POST", "/v1/intake/abc", inject.BadRequest},
		{"GET", "/v1/intake/nope", inject.NotFound},
		{"GET", "/", inject.NotFound},
		{"POST", "/v2/shares", inject.NotFound},
	} {
		if _, _, ref := f.call(t, f.id("provisioner"), tc.method, tc.path, "{}"); ref == nil || ref.Reason != tc.reason {
			t.Errorf("%s %s: got %v, want %s", tc.method, tc.path, ref, tc.reason)
		}
	}
}

func TestShareDeliveryFails(t *testing.T) {
	f := newFixture(t)
	f.hook.setFail(http.StatusServiceUnavailable)
	_, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/shares", `{"secret":"STRIPE_KEY_1","to":"alice"}`)
	if ref == nil || ref.Reason != inject.UpstreamUnreachable || ref.Status() != http.StatusBadGateway {
		t.Fatalf("got %v, want upstream_unreachable", ref)
	}
	shares, err := f.state.ListShares(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 1 || shares[0].Status != StatusRevoked {
		t.Fatalf("got %+v, want one revoked share", shares)
	}
	if _, err := f.svc.Reveal(context.Background(), shares[0].ID, Viewer{}); !isGone(err, StatusRevoked) {
		t.Errorf("reveal of an undelivered share: got %v, want gone", err)
	}
	if strings.Contains(f.audit.String(), "share_created") {
		t.Errorf("an undelivered share was audited as created")
	}
}

func TestConcurrentReveals(t *testing.T) {
	f := newFixture(t)
	if _, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/shares", `{"secret":"STRIPE_KEY_1","to":"alice"}`); ref != nil {
		t.Fatal(ref)
	}
	id, _ := linkParts(t, f.hook.deliveries()[0].Link, SharePath)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, gone := 0, 0
	for range 100 {
		wg.Go(func() {
			_, err := f.svc.Reveal(context.Background(), id, Viewer{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case isGone(err, StatusViewed):
				gone++
			default:
				t.Errorf("got %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || gone != 99 {
		t.Errorf("got %d values and %d gone, want 1 and 99", wins, gone)
	}
}

func TestTamperedShare(t *testing.T) {
	f := newFixture(t)
	if _, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/shares", `{"secret":"STRIPE_KEY_1","to":"alice","views":2}`); ref != nil {
		t.Fatal(ref)
	}
	id, key := linkParts(t, f.hook.deliveries()[0].Link, SharePath)
	meta, _ := f.svc.ShareMeta(context.Background(), id)
	// A damaged fragment: the page compares the key check before claiming.
	bad := []byte(key)
	bad[3] ^= 1
	if kb, err := Decode(string(bad), KeyBytes); err == nil && Encode(KeyCheck(kb)) == meta.KeyCheck {
		t.Errorf("a damaged key passes the key check")
	}
	if m, _ := f.svc.ShareMeta(context.Background(), id); m.ViewsLeft != 2 {
		t.Errorf("checking consumed a view")
	}
	// A tampered ciphertext fails to open: damaged, not a wrong value.
	rev, err := f.svc.Reveal(context.Background(), id, Viewer{})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := Decode(rev.Ciphertext, 0)
	ct[len(ct)-1] ^= 1
	if _, err := OpenShare(id, key, ct); !errors.Is(err, ErrDamaged) {
		t.Errorf("got %v, want ErrDamaged", err)
	}
	if m, _ := f.svc.ShareMeta(context.Background(), id); m.ViewsLeft != 1 {
		t.Errorf("got views_left %d, want 1: one claim takes one view", m.ViewsLeft)
	}
}

func TestShareExpires(t *testing.T) {
	f := newFixture(t)
	if _, _, ref := f.call(t, f.id("provisioner"), "POST", "/v1/shares", `{"secret":"STRIPE_KEY_1","to":"alice","expires_in":"10m"}`); ref != nil {
		t.Fatal(ref)
	}
	id, _ := linkParts(t, f.hook.deliveries()[0].Link, SharePath)
	f.advance(11 * time.Minute)
	if _, err := f.svc.Reveal(context.Background(), id, Viewer{}); !isGone(err, StatusExpired) {
		t.Errorf("got %v, want gone (expired)", err)
	}
	f.svc.SweepOnce(context.Background())
	if !strings.Contains(f.audit.String(), `"event":"share_expired"`) {
		t.Errorf("the sweep audited no share_expired")
	}
	sh, _ := f.state.GetShare(context.Background(), id)
	if len(sh.Ciphertext) != 0 {
		t.Errorf("an expired share keeps its ciphertext")
	}
	f.advance(Forget + time.Hour)
	f.svc.SweepOnce(context.Background())
	if _, err := f.state.GetShare(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want a forgotten share", err)
	}
}

// TestOperatorShareAudited: a share `keyhole share` made (another process,
// without the audit log) is audited by the serving process's next sweep,
// once; shares that existed before the first sweep are not.
func TestOperatorShareAudited(t *testing.T) {
	f := newFixture(t)
	cli, err := New(Config{State: f.state, Store: f.store, Rules: func() *rules.Set { return f.set }, Client: f.hook.srv.Client(), Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := cli.Share(context.Background(), ShareRequest{Secret: "STRIPE_KEY_2", To: "bob"}, ShareOptions{NoDelivery: true})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.SweepOnce(context.Background())
	c, link, err := cli.Share(context.Background(), ShareRequest{Secret: "STRIPE_ADMIN", To: "alice", Views: 2}, ShareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if link.IsZero() || len(f.hook.deliveries()) != 1 {
		t.Fatalf("the operator's share was not delivered")
	}
	f.svc.SweepOnce(context.Background())
	f.svc.SweepOnce(context.Background())
	log := f.audit.String()
	if n := strings.Count(log, `"id":"`+c.ID+`"`); n != 1 || !strings.Contains(log, `"by":"operator"`) {
		t.Errorf("got %d share_created lines for the operator's share, want 1", n)
	}
	if strings.Contains(log, before.ID) {
		t.Errorf("a share from before the first sweep was audited")
	}
	assertClean(t, log, link.Reveal(), shareValue)
}
