package budget

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"keyhole/rules"
)

const testRules = `
secrets:
  STRIPE_LIVE: {source: env:X, hosts: [api.stripe.com]}
  GITHUB: {source: env:X, hosts: [api.github.com]}
  OPENAI: {source: env:X, hosts: [api.openai.com]}
agents:
  billing:
    token: env:T
    secrets: [STRIPE_LIVE, GITHUB]
    budgets:
      - {secrets: [STRIPE_LIVE], requests: 2, per: 1h}
      - {requests: 3, per: 24h}
  search:
    token: env:T
    secrets: [STRIPE_LIVE, GITHUB, OPENAI]
    budgets:
      - {secrets: [STRIPE_LIVE], requests: 100, per: 1h}
      - {secrets: [GITHUB, STRIPE_LIVE], requests: 100, per: 1m}
  reader:
    token: env:T
    secrets: [STRIPE_LIVE]
`

func testPlan(t testing.TB) *Plan {
	t.Helper()
	set, err := rules.Parse("test.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return Compile(set)
}

// recorder is an Observer that keeps what it was told.
type recorder struct {
	mu        sync.Mutex
	decisions []string
	checks    int
}

func (r *recorder) BudgetDecision(agent, budget, result string) {
	r.mu.Lock()
	r.decisions = append(r.decisions, agent+" "+budget+" "+result)
	r.mu.Unlock()
}

func (r *recorder) BudgetCheckDuration(string, time.Duration) {
	r.mu.Lock()
	r.checks++
	r.mu.Unlock()
}

func TestLimiter(t *testing.T) {
	clock := newFakeClock()
	obs := &recorder{}
	l := New(Config{Backend: NewMemory(clock.Now), Observer: obs})
	plan := testPlan(t)
	stripe := []string{"STRIPE_LIVE"}
	tests := []struct {
		name    string
		advance time.Duration
		agent   string
		used    []string
		want    int // index of the refusing budget; -1: admitted
		retry   int // Retry-After seconds
		obs     string
	}{
		{"first stripe request", 0, "billing", stripe, -1, 0, "billing STRIPE_LIVE:2/1h allowed,billing *:3/1d allowed"},
		{"second stripe request", time.Minute, "billing", stripe, -1, 0, "billing STRIPE_LIVE:2/1h allowed,billing *:3/1d allowed"},
		{"third stripe request: the hourly budget refuses", time.Second, "billing", stripe, 0, 3600 - 61, "billing STRIPE_LIVE:2/1h refused"},
		{"a request without a secret falls under the daily one only", 0, "billing", nil, -1, 0, "billing *:3/1d allowed"},
		{"the daily budget is full", 0, "billing", []string{"GITHUB"}, 1, 24*3600 - 61, "billing *:3/1d refused"},
		{"another agent is not affected", 0, "search", stripe, -1, 0, "search STRIPE_LIVE:100/1h allowed,search GITHUB,STRIPE_LIVE:100/1m allowed"},
		{"an agent without budgets", 0, "reader", stripe, -1, 0, ""},
		{"an hour later the hourly one frees, the daily one does not", time.Hour, "billing", stripe, 1, 24*3600 - 61 - 3600, "billing *:3/1d refused"},
		{"a day later", 24 * time.Hour, "billing", stripe, -1, 0, "billing STRIPE_LIVE:2/1h allowed,billing *:3/1d allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock.Advance(tc.advance)
			obs.decisions = nil
			ref := l.Check(context.Background(), plan, tc.agent, tc.used)
			switch {
			case tc.want < 0 && ref != nil:
				t.Fatalf("got %q, want admitted", ref.Message())
			case tc.want >= 0 && ref == nil:
				t.Fatalf("got admitted, want budgets[%d] to refuse", tc.want)
			case ref != nil && (ref.Budget.Index != tc.want || ref.RetryAfterSeconds() != tc.retry || ref.Err != nil || ref.Agent != tc.agent):
				t.Fatalf("got budgets[%d] retry %d s err %v agent %s, want budgets[%d] retry %d s", ref.Budget.Index, ref.RetryAfterSeconds(), ref.Err, ref.Agent, tc.want, tc.retry)
			}
			if got := strings.Join(obs.decisions, ","); got != tc.obs {
				t.Fatalf("observed %q, want %q", got, tc.obs)
			}
		})
	}
}

func TestRefusalText(t *testing.T) {
	ref := &Refusal{Agent: "billing", Budget: rules.Budget{Index: 1, Secrets: []string{"STRIPE_LIVE"}, Requests: 100, Per: time.Hour}, RetryAfter: 1500 * time.Millisecond}
	if got, want := ref.RetryAfterSeconds(), 2; got != want {
		t.Fatalf("RetryAfterSeconds: got %d, want %d", got, want)
	}
	if got, want := ref.Message(), "keyhole: agent billing is over its budget budgets[1] (requests with STRIPE_LIVE): at most 100 requests per 1h; it admits a request again in 2 s"; got != want {
		t.Fatalf("Message: got %q, want %q", got, want)
	}
	if got, want := ref.Label(), "budgets[1] STRIPE_LIVE:100/1h"; got != want {
		t.Fatalf("Label: got %q, want %q", got, want)
	}
	ref.RetryAfter = time.Millisecond
	if got := ref.RetryAfterSeconds(); got != 1 {
		t.Fatalf("RetryAfterSeconds of 1 ms: got %d, want 1", got)
	}
}

// countingBackend counts the takes it is asked for.
type countingBackend struct {
	Backend
	n int
}

func (c *countingBackend) Take(ctx context.Context, ws []Window) (Verdict, error) {
	c.n++
	return c.Backend.Take(ctx, ws)
}

func TestLimiterNoBudgetNoBackend(t *testing.T) {
	b := &countingBackend{Backend: NewMemory(nil)}
	l := New(Config{Backend: b})
	plan := testPlan(t)
	for _, c := range []struct {
		agent string
		used  []string
	}{{"reader", []string{"STRIPE_LIVE"}}, {"anonymous", nil}, {"search", []string{"OPENAI"}}, {"search", nil}} {
		if ref := l.Check(context.Background(), plan, c.agent, c.used); ref != nil {
			t.Fatalf("%s %v: got %q, want admitted", c.agent, c.used, ref.Message())
		}
	}
	if b.n != 0 {
		t.Fatalf("got %d takes, want 0", b.n)
	}
}

func TestKey(t *testing.T) {
	b := rules.Budget{Secrets: []string{"A", "B"}, Requests: 5, Per: time.Hour}
	if got, want := Key("bot", b), "keyhole:budget:{bot}:A,B:3600000"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	b.Requests = 50
	if got := Key("bot", b); got != "keyhole:budget:{bot}:A,B:3600000" {
		t.Fatalf("a budget's key changed with its requests: %q", got)
	}
}

// TestLimiterReload checks that a reload keeps a budget's window when only
// its requests change, starts afresh when its window changes, and drops
// the windows of budgets that are gone.
func TestLimiterReload(t *testing.T) {
	plan := func(budgets string) *Plan {
		set, err := rules.Parse("test.yaml", []byte(`
secrets:
  KEY: {source: env:X, hosts: [api.example.test]}
agents:
  bot:
    token: env:T
    secrets: [KEY]
    budgets: `+budgets+`
`))
		if err != nil {
			t.Fatal(err)
		}
		return Compile(set)
	}
	clock := newFakeClock()
	mem := NewMemory(clock.Now)
	l := New(Config{Backend: mem})
	ctx := context.Background()
	take := func(p *Plan) bool { return l.Check(ctx, p, "bot", nil) == nil }

	p1 := plan("[{requests: 3, per: 1h}]")
	l.Retain(p1)
	for range 3 {
		if !take(p1) {
			t.Fatal("refused within the budget")
		}
	}
	p2 := plan("[{requests: 4, per: 1h}]") // raised: the window keeps its 3
	l.Retain(p2)
	if !take(p2) || take(p2) {
		t.Fatal("raised to 4 after 3: want exactly one more")
	}
	p3 := plan("[{requests: 4, per: 2h}]") // another window: afresh
	l.Retain(p3)
	if !take(p3) {
		t.Fatal("a new window refused its first request")
	}
	if _, kept := mem.logs[Key("bot", rules.Budget{Per: time.Hour})]; kept {
		t.Fatal("the window of a budget that is gone was kept")
	}
}
