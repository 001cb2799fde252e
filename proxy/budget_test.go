package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/budget"
	"keyhole/rules"
)

// budgetRulesYAML gives billing (static token $PROXY_TEST_BILLING) a
// budget of 2 requests an hour with KEY and 4 a day in all.
const budgetRulesYAML = `
agents:
  billing:
    token: env:PROXY_TEST_BILLING
    secrets: [KEY]
    budgets:
      - {secrets: [KEY], requests: 2, per: 1h}
      - {requests: 4, per: 24h}
secrets:
  KEY:
    source: env:PROXY_TEST_KEY
    hosts: [api.example.test]
resolve:
  api.example.test: UPSTREAM
`

// budgetProxy is a token proxy whose rules are budgetRulesYAML.
func budgetProxy(t *testing.T) *tokenProxy {
	t.Helper()
	tp := startTokenProxy(t)
	yaml := strings.ReplaceAll(budgetRulesYAML, "UPSTREAM", tp.up.Listener.Addr().String())
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	tp.SetRules(set)
	return tp
}

// send makes one request through tp as user:pass, with <<KEY>> when key.
func (tp *tokenProxy) send(t *testing.T, pass string, key bool) (*http.Response, string) {
	return tp.sendTo(t, "https://api.example.test/v1/charges", pass, key)
}

// sendTo is send to rawURL.
func (tp *tokenProxy) sendTo(t *testing.T, rawURL, pass string, key bool) (*http.Response, string) {
	t.Helper()
	pu := &url.URL{Scheme: "http", Host: tp.addr, User: url.UserPassword("billing", pass)}
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: tlsTrusting(tp.Proxy)}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	if key {
		req.Header.Set("Authorization", "Bearer <<KEY>>")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestBudgetRefusal(t *testing.T) {
	tp := budgetProxy(t)
	minted := tp.mint(t, "task-budget", 10*time.Minute, time.Now())
	type body struct {
		Reason string `json:"reason"`
		Error  string `json:"error"`
		Budget *struct {
			Agent      string    `json:"agent"`
			Index      int       `json:"index"`
			Secrets    []string  `json:"secrets"`
			Requests   int       `json:"requests"`
			Per        string    `json:"per"`
			RetryAfter int       `json:"retry_after"`
			FreesAt    time.Time `json:"frees_at"`
		} `json:"budget"`
	}
	// A request the policy refuses is not counted: KEY may not go to
	// other.example.test.
	for range 3 {
		if resp, text := tp.sendTo(t, "https://other.example.test/", "billing-static-1", true); resp.StatusCode != 403 {
			t.Fatalf("KEY to another host: got %d %s, want 403", resp.StatusCode, text)
		}
	}
	tests := []struct {
		name   string
		pass   string
		key    bool
		status int
		index  int // the refusing budget
		hits   int64
	}{
		{"static token, first KEY request", "billing-static-1", true, 200, 0, 1},
		{"minted token counts for its agent", minted, true, 200, 0, 2},
		{"third KEY request in the hour", "billing-static-1", true, 429, 0, 2},
		{"third KEY request, minted", minted, true, 429, 0, 2},
		{"no secret: only the daily budget", "billing-static-1", false, 200, 0, 3},
		{"no secret, minted", minted, false, 200, 0, 4},
		{"the daily budget is full", "billing-static-1", false, 429, 1, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, text := tp.send(t, tc.pass, tc.key)
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, text, tc.status)
			}
			if got := tp.up.hits.Load(); got != tc.hits {
				t.Fatalf("the upstream saw %d requests, want %d", got, tc.hits)
			}
			if tc.status == 200 {
				return
			}
			var b body
			if err := json.Unmarshal([]byte(text), &b); err != nil || b.Budget == nil {
				t.Fatalf("got body %q (%v), want JSON naming the budget", text, err)
			}
			per, requests, secrets := "1h", 2, "KEY"
			if tc.index == 1 {
				per, requests, secrets = "1d", 4, ""
			}
			maxRetry := map[string]int{"1h": 3600, "1d": 86400}[per]
			if b.Reason != "budget_exceeded" || b.Budget.Agent != "billing" || b.Budget.Index != tc.index || b.Budget.Per != per ||
				b.Budget.Requests != requests || strings.Join(b.Budget.Secrets, ",") != secrets {
				t.Fatalf("got %+v %+v, want budget_exceeded naming budgets[%d]", b, *b.Budget, tc.index)
			}
			retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			if err != nil || retry != b.Budget.RetryAfter || retry < maxRetry-120 || retry > maxRetry {
				t.Fatalf("got Retry-After %q and retry_after %d, want about %d", resp.Header.Get("Retry-After"), b.Budget.RetryAfter, maxRetry)
			}
			if d := time.Until(b.Budget.FreesAt) - time.Duration(retry)*time.Second; d > 2*time.Second || d < -time.Minute {
				t.Fatalf("got frees_at %v, want about %d s from now", b.Budget.FreesAt, retry)
			}
			if !strings.Contains(b.Error, fmt.Sprintf("budgets[%d]", tc.index)) {
				t.Fatalf("got message %q, want it to name budgets[%d]", b.Error, tc.index)
			}
		})
	}
	recs := tp.records(t)
	var refused int
	for _, rec := range recs {
		if rec["reason"] == "budget_exceeded" {
			refused++
			if rec["status"] != float64(429) || !strings.HasPrefix(rec["budget"].(string), "budgets[") {
				t.Errorf("got audit record %v, want status 429 and the budget", rec)
			}
		} else if _, ok := rec["budget"]; ok {
			t.Errorf("an allowed request's record names a budget: %v", rec)
		}
	}
	if refused != 3 {
		t.Fatalf("got %d budget_exceeded records, want 3", refused)
	}
	if rec := recs[len(recs)-1]; rec["budget"] != "budgets[1] *:4/1d" {
		t.Fatalf("got budget %v, want budgets[1] *:4/1d", rec["budget"])
	}
	if rec := recs[3+2]; rec["budget"] != "budgets[0] KEY:2/1h" || fmt.Sprint(rec["secrets"]) != "[KEY]" {
		t.Fatalf("got budget %v secrets %v, want budgets[0] KEY:2/1h and [KEY]", rec["budget"], rec["secrets"])
	}
	if strings.Contains(tp.auditBuf.String(), proxyTestSecret) {
		t.Fatal("the audit log contains the secret")
	}
}

// failingBackend cannot reach its state.
type failingBackend struct{ takes atomic.Int64 }

func (f *failingBackend) Take(context.Context, []budget.Window) (budget.Verdict, error) {
	f.takes.Add(1)
	return budget.Verdict{}, fmt.Errorf("%w: connection refused", budget.ErrUnavailable)
}

// budgetTestRules gives billing (static token billing-static-1) a budget
// over KEY; ci has none.
const budgetTestRules = `
agents:
  billing:
    token: env:PROXY_TEST_BILLING
    secrets: [KEY]
    budgets:
      - {secrets: [KEY], requests: 2, per: 1h}
  ci:
    token: env:PROXY_TEST_BILLING
    secrets: [KEY]
secrets:
  KEY:
    source: env:PROXY_TEST_KEY
    hosts: [api.example.test]
resolve:
  api.example.test: UPSTREAM
`

// TestBudgetFailsClosed checks that a request whose budgets cannot be
// checked is refused and nothing goes upstream, while a request of an
// agent without budgets never asks the backend.
func TestBudgetFailsClosed(t *testing.T) {
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	t.Setenv("PROXY_TEST_BILLING", "billing-static-1")
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	fb := &failingBackend{}
	tp := startTestProxyWith(t, up, budgetTestRules, Config{}, func(d *Deps) { d.Budgets = budget.New(budget.Config{Backend: fb}) })
	resp, text := get(t, tp.agentClient("billing", "billing-static-1", false), "https://api.example.test/v1/x", "Authorization", "Bearer <<KEY>>")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(text, `"unavailable":true`) {
		t.Fatalf("got %d Retry-After %q %s, want 429, Retry-After 1 and unavailable", resp.StatusCode, resp.Header.Get("Retry-After"), text)
	}
	if strings.Contains(text, "connection refused") {
		t.Fatalf("the refusal holds the internal error: %s", text)
	}
	if up.hits.Load() != 0 || fb.takes.Load() != 1 {
		t.Fatalf("upstream hits %d, takes %d, want 0 and 1", up.hits.Load(), fb.takes.Load())
	}
	rec := tp.auditRecords(t)[0]
	if rec["reason"] != "budget_exceeded" || rec["error"] != "budget_state_unavailable" {
		t.Fatalf("got record %v, want budget_exceeded with error budget_state_unavailable", rec)
	}

	// An agent without budgets, and billing without KEY: the backend is
	// never asked.
	if resp, _ := get(t, tp.agentClient("ci", "billing-static-1", false), "https://api.example.test/v1/x", "Authorization", "Bearer <<KEY>>"); resp.StatusCode != 200 {
		t.Fatalf("ci: got %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, tp.agentClient("billing", "billing-static-1", false), "https://api.example.test/v1/x"); resp.StatusCode != 200 {
		t.Fatalf("billing without KEY: got %d, want 200", resp.StatusCode)
	}
	if fb.takes.Load() != 1 {
		t.Fatalf("got %d takes, want still 1", fb.takes.Load())
	}
}
