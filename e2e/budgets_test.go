package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
)

// budgetRules gives billing a budget of 100 STRIPE requests an hour; ci
// has none.
const budgetRules = `
agents:
  billing:
    token: env:BILLING_TOKEN
    secrets: [STRIPE, BASIC]
    budgets:
      - {secrets: [STRIPE], requests: 100, per: 1h}
  ci:
    token: env:CI_TOKEN
    secrets: [GITHUB, PLAIN]
`

// budgetOutcome counts what a burst of requests got.
type budgetOutcome struct {
	mu      sync.Mutex
	allowed int
	refused int
	other   []string
}

// burst sends n concurrent STRIPE requests as billing, the i-th through
// ks[i%len(ks)], and checks every refusal: 429 budget_exceeded, a
// Retry-After of at most an hour, and a body naming the budget.
func burst(t *testing.T, ks []*keyhole, n int) *budgetOutcome {
	t.Helper()
	clients := make([]*http.Client, len(ks))
	for i, k := range ks {
		clients[i] = k.GoClient(t, "billing", billingToken)
		clients[i].Timeout = 60 * time.Second
	}
	out := &budgetOutcome{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodGet, "https://api.stripe.test/v1/charges", nil)
			req.Header.Set("Authorization", "Bearer <<STRIPE>>")
			resp, err := clients[i%len(clients)].Do(req)
			if err != nil {
				out.add(0, err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertNoSecretIn(t, "response", string(b))
			if resp.StatusCode == http.StatusTooManyRequests {
				out.add(429, checkBudgetRefusal(resp, b))
				return
			}
			out.add(resp.StatusCode, "")
		})
	}
	close(start)
	wg.Wait()
	return out
}

func (o *budgetOutcome) add(status int, problem string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case problem != "":
		o.other = append(o.other, problem)
	case status == 200:
		o.allowed++
	case status == 429:
		o.refused++
	default:
		o.other = append(o.other, "status "+strconv.Itoa(status))
	}
}

// checkBudgetRefusal returns what is wrong with a 429, or "".
func checkBudgetRefusal(resp *http.Response, body []byte) string {
	var m struct {
		Reason string `json:"reason"`
		Budget struct {
			Agent       string   `json:"agent"`
			Index       int      `json:"index"`
			Secrets     []string `json:"secrets"`
			Requests    int      `json:"requests"`
			Per         string   `json:"per"`
			RetryAfter  int      `json:"retry_after"`
			Unavailable bool     `json:"unavailable"`
		} `json:"budget"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "a 429 that is not JSON"
	}
	b := m.Budget
	if m.Reason != "budget_exceeded" || b.Agent != "billing" || b.Index != 0 || len(b.Secrets) != 1 || b.Secrets[0] != "STRIPE" ||
		b.Requests != 100 || b.Per != "1h" || b.Unavailable {
		return "a 429 that does not name the budget: " + string(body)
	}
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 3600 || retry != b.RetryAfter {
		return "Retry-After " + strconv.Quote(resp.Header.Get("Retry-After")) + " does not match retry_after " + strconv.Itoa(b.RetryAfter)
	}
	return ""
}

func (o *budgetOutcome) check(t *testing.T, up *upstream, before int64) {
	t.Helper()
	if len(o.other) > 0 {
		t.Fatalf("%d requests got neither 200 nor a proper 429, first: %s", len(o.other), o.other[0])
	}
	if o.allowed != 100 || o.refused != 200 {
		t.Fatalf("got %d allowed and %d refused, want 100 and 200", o.allowed, o.refused)
	}
	if got := up.Hits() - before; got != 100 {
		t.Fatalf("the upstream saw %d requests, want exactly 100", got)
	}
}

// TestBudgetUnderConcurrency sends 300 requests at once against a budget of
// 100 an hour: exactly 100 reach the upstream.
func TestBudgetUnderConcurrency(t *testing.T) {
	w := newWorld(t, budgetRules, "BILLING_TOKEN="+billingToken, "CI_TOKEN="+ciToken)
	before := w.stripe.Hits()
	burst(t, []*keyhole{w.k}, 300).check(t, w.stripe, before)

	// Every real client sees the refusal, and nothing goes upstream.
	for _, c := range clients(t) {
		t.Run(c.Name(), func(t *testing.T) {
			before := w.stripe.Hits()
			resp := c.Do(t, w.k, withProxyAuth(stripeReq, "billing", billingToken))
			assertRefusal(t, resp, 429, "budget_exceeded", "")
			if resp.Header != nil && resp.Header.Get("Retry-After") == "" {
				t.Error("the refusal has no Retry-After")
			}
			if w.stripe.Hits() != before {
				t.Error("a request over the budget reached the upstream")
			}
		})
	}
	// A request of billing without STRIPE, and one of ci, are not counted.
	c := w.k.GoClient(t, "billing", billingToken)
	if resp, err := c.Get("https://api.stripe.test/v1/balance"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("billing without a secret: got %v %v, want 200", resp, err)
	}
	c = w.k.GoClient(t, "ci", ciToken)
	req, _ := http.NewRequest(http.MethodGet, "https://api.github.test/user", nil)
	req.Header.Set("Authorization", "Bearer <<GITHUB>>")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("ci: got %v %v, want 200", resp, err)
	}
	rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["reason"] == "budget_exceeded" })
	if rec["status"] != float64(429) || rec["budget"] != "budgets[0] STRIPE:100/1h" || rec["agent"] != "billing" {
		t.Fatalf("got audit record %v, want 429 naming budgets[0] STRIPE:100/1h", rec)
	}
}

// TestBudgetAcrossReplicas runs three keyhole processes sharing one
// redis-server: a budget of 100 an hour admits exactly 100 of 300
// concurrent requests spread over them. With Redis gone, requests under a
// budget are refused (fail closed) while the others go on; when it is
// back, budgets work again without a restart.
func TestBudgetAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// A generous check timeout: 300 requests at once on a loaded machine
	// can keep Redis from answering within the default 100 ms, and a check
	// that times out refuses (and may still have counted).
	env := []string{"BILLING_TOKEN=" + billingToken, "CI_TOKEN=" + ciToken, "KEYHOLE_REDIS_URL=" + srv.URL(),
		"KEYHOLE_REDIS_STALE=3s", "KEYHOLE_BUDGET_TIMEOUT=10s"}
	w := newWorld(t, budgetRules, env...)
	rulesYAML, err := os.ReadFile(w.k.Rules)
	if err != nil {
		t.Fatal(err)
	}
	ks := []*keyhole{w.k, startKeyhole(t, string(rulesYAML), env...), startKeyhole(t, string(rulesYAML), env...)}
	before := w.stripe.Hits()
	burst(t, ks, 300).check(t, w.stripe, before)

	srv.Kill()
	before = w.stripe.Hits()
	stripe := ks[1].GoClient(t, "billing", billingToken)
	var resp *http.Response
	var body []byte
	// The first requests may wait out the check's timeout; soon the
	// health check has noticed and they are refused at once.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "https://api.stripe.test/v1/charges", nil)
		req.Header.Set("Authorization", "Bearer <<STRIPE>>")
		if resp, err = stripe.Do(req); err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 429 {
			t.Fatalf("Redis gone: got %d %s, want 429", resp.StatusCode, body)
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if b, _ := m["budget"].(map[string]any); b["unavailable"] == true {
			break
		}
	}
	if resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("Redis gone: got Retry-After %q body %s, want 1 and unavailable", resp.Header.Get("Retry-After"), body)
	}
	ci := ks[2].GoClient(t, "ci", ciToken)
	req, _ := http.NewRequest(http.MethodGet, "https://api.github.test/user", nil)
	req.Header.Set("Authorization", "Bearer <<GITHUB>>")
	if resp, err := ci.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("Redis gone, an agent without budgets: got %v %v, want 200", resp, err)
	}
	if got := w.stripe.Hits() - before; got != 1 {
		t.Fatalf("Redis gone: the upstream saw %d requests, want only ci's 1", got)
	}

	srv.Restart() // empty: the windows start again
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, "https://api.stripe.test/v1/charges", nil)
		req.Header.Set("Authorization", "Bearer <<STRIPE>>")
		resp, err := stripe.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis back: still %d after 20 s, want 200", resp.StatusCode)
		}
	}
}
