// Package budget enforces the budgets of keyhole's rules file: per-agent
// (and optionally per-secret) rate limits over sliding windows.
//
// A budget of N requests per D admits exactly N requests in any window of
// length D: each window is a log of the times it admitted a request (not an
// approximation by fixed buckets), and a request is admitted when every
// window it falls under holds fewer than its N entries younger than D. A
// request's windows are checked and consumed together, atomically: when
// one refuses, none is consumed. Memory is bounded: a window holds at most
// its N entries, and there is one window per budget of the rules.
//
// The [Limiter] compiles a rules set once into a [Plan] (the request path
// never looks at configuration), and asks a [Backend] to take a request:
// [Memory], in-process and the default, or [Redis], one Lua script per
// check so that replicas sharing a redis-server share their budgets. A
// request of an agent without a budget, or whose secrets no budget names,
// touches no backend at all. A backend that cannot answer (Redis
// unreachable, slow or stale) refuses: budgets fail closed.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"keyhole/rules"
)

// Window is one budget of one agent as a backend sees it.
type Window struct {
	// Key names the window's log; the same budget has the same key on every
	// replica and across reloads, so that a reload keeps the log.
	Key string
	// Requests is how many requests the window admits.
	Requests int
	// Per is the window's length.
	Per time.Duration
}

// Verdict is a backend's answer for one request.
type Verdict struct {
	// Refused is the index of the first window that was full, or -1 when
	// the request was admitted (and counted in every window).
	Refused int
	// RetryAfter is, for a refused request, how long until the refusing
	// window admits a request again.
	RetryAfter time.Duration
}

// Backend admits requests under sliding windows.
type Backend interface {
	// Take admits one request under every window of ws, or under none. It
	// counts the request in every window when each holds fewer than its
	// Requests entries younger than its Per; otherwise it counts nothing
	// and names the first full window. An error means it could not decide.
	Take(ctx context.Context, ws []Window) (Verdict, error)
}

// Observer is told about budget checks, for metrics. The budget label is
// [rules.Budget.String]; result is "allowed", "refused" or "unavailable".
type Observer interface {
	BudgetDecision(agent, budget, result string)
	BudgetCheckDuration(backend string, d time.Duration)
}

// Results of a check, as an Observer sees them.
const (
	ResultAllowed     = "allowed"
	ResultRefused     = "refused"
	ResultUnavailable = "unavailable"
)

// Plan is the budgets of one rules set, compiled: for each agent with
// budgets, each budget with its window. A Plan is immutable.
type Plan struct {
	agents map[string][]compiled
}

type compiled struct {
	budget rules.Budget
	window Window
	label  string
}

// Compile returns the plan of set's budgets.
func Compile(set *rules.Set) *Plan {
	p := &Plan{agents: map[string][]compiled{}}
	for name, a := range set.Agents {
		for _, b := range a.Budgets {
			p.agents[name] = append(p.agents[name], compiled{
				budget: b,
				window: Window{Key: Key(name, b), Requests: b.Requests, Per: b.Per},
				label:  b.String(),
			})
		}
	}
	return p
}

// Keys returns the key of every window of the plan.
func (p *Plan) Keys() map[string]bool {
	out := map[string]bool{}
	for _, cs := range p.agents {
		for _, c := range cs {
			out[c.window.Key] = true
		}
	}
	return out
}

// Key returns the key of the window of agent's budget b:
// "keyhole:budget:{billing}:STRIPE_LIVE:3600000". It names the agent, the
// secrets and the window's length in milliseconds, not the number of
// requests, so that raising or lowering a budget keeps its log. The agent
// is a Redis Cluster hash tag: every window of an agent is in one slot, as
// one script needs.
func Key(agent string, b rules.Budget) string {
	scope := "*"
	if b.Secrets != nil {
		scope = strings.Join(b.Secrets, ",")
	}
	return "keyhole:budget:{" + agent + "}:" + scope + ":" + strconv.FormatInt(b.Per.Milliseconds(), 10)
}

// Refusal is a request refused by a budget, or because its budgets could
// not be checked.
type Refusal struct {
	// Agent is the agent whose budget refused.
	Agent string
	// Budget is the budget that refused the request (for Err, the first of
	// the request's budgets).
	Budget rules.Budget
	// RetryAfter is how long until the budget admits a request again.
	RetryAfter time.Duration
	// Err is why the budgets could not be checked; nil when a budget was
	// full.
	Err error
}

// RetryAfterSeconds returns RetryAfter in whole seconds, rounded up and at
// least 1, for the Retry-After header.
func (r *Refusal) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(r.RetryAfter.Seconds())))
}

// Message returns the sentence the agent reads.
func (r *Refusal) Message() string {
	if r.Err != nil {
		return fmt.Sprintf("keyhole: the budgets of agent %s could not be checked (the shared budget state is unavailable), so the request was refused; try again in %d s", r.Agent, r.RetryAfterSeconds())
	}
	return fmt.Sprintf("keyhole: agent %s is over its budget budgets[%d] (%s): at most %d requests per %s; it admits a request again in %d s",
		r.Agent, r.Budget.Index, scope(r.Budget), r.Budget.Requests, rules.FormatBudgetPer(r.Budget.Per), r.RetryAfterSeconds())
}

// Label returns the refusing budget for the audit record:
// "budgets[0] STRIPE_LIVE:100/1h".
func (r *Refusal) Label() string {
	return "budgets[" + strconv.Itoa(r.Budget.Index) + "] " + r.Budget.String()
}

func scope(b rules.Budget) string {
	if b.Secrets == nil {
		return "every request"
	}
	return "requests with " + strings.Join(b.Secrets, ", ")
}

// Config configures a Limiter.
type Config struct {
	// Backend keeps the windows; nil means a new Memory.
	Backend Backend
	// Name names the backend in metrics; default "memory" for a nil
	// Backend, else "custom".
	Name string
	// Timeout bounds one check by a backend other than Memory (which only
	// takes a mutex); default 100 ms. A check that takes longer refuses the
	// request.
	Timeout time.Duration
	// UnavailableRetry is the Retry-After of a request refused because the
	// backend could not answer; default 1 s.
	UnavailableRetry time.Duration
	// Observer is told about every check; nil means none.
	Observer Observer
}

// Limiter checks requests against a plan's budgets.
type Limiter struct {
	backend Backend
	name    string
	timeout time.Duration
	retry   time.Duration
	obs     Observer
}

// New returns a limiter for cfg.
func New(cfg Config) *Limiter {
	l := &Limiter{backend: cfg.Backend, name: cfg.Name, timeout: cfg.Timeout, retry: cfg.UnavailableRetry, obs: cfg.Observer}
	if l.backend == nil {
		l.backend = NewMemory(nil)
		if l.name == "" {
			l.name = "memory"
		}
	}
	if l.name == "" {
		l.name = "custom"
	}
	if l.timeout <= 0 {
		l.timeout = 100 * time.Millisecond
	}
	if l.retry <= 0 {
		l.retry = time.Second
	}
	return l
}

// Retain tells the backend, when it keeps windows in memory, which keys
// the rules in force still have, so that it can drop the others.
func (l *Limiter) Retain(p *Plan) {
	if r, ok := l.backend.(interface{ Retain(map[string]bool) }); ok {
		r.Retain(p.Keys())
	}
}

// maxWindows bounds the windows of one check (rules allow 16 budgets an
// agent).
const maxWindows = 16

// Check admits a request of agent that uses the secrets used (as Apply
// injected them) under every budget of p it falls under, counting it in
// each, or refuses it and counts it in none. It returns nil when the
// request is admitted, also when no budget applies (and then it touches
// no backend) and when p is nil.
func (l *Limiter) Check(ctx context.Context, p *Plan, agent string, used []string) *Refusal {
	if p == nil {
		return nil
	}
	cs := p.agents[agent]
	if len(cs) == 0 {
		return nil
	}
	var idx [maxWindows]int
	var wins [maxWindows]Window
	n := 0
	for i := range cs {
		if n < maxWindows && cs[i].budget.Applies(used) {
			idx[n], wins[n] = i, cs[i].window
			n++
		}
	}
	if n == 0 {
		return nil
	}
	start := time.Now()
	var v Verdict
	var err error
	if _, local := l.backend.(*Memory); local {
		// In-process: nothing to wait for but a mutex.
		v, err = l.backend.Take(ctx, wins[:n])
	} else {
		ctx, cancel := context.WithTimeout(ctx, l.timeout)
		v, err = l.backend.Take(ctx, wins[:n])
		cancel()
	}
	if l.obs != nil {
		l.obs.BudgetCheckDuration(l.name, time.Since(start))
	}
	if err == nil && (v.Refused < -1 || v.Refused >= n) {
		err = fmt.Errorf("budget: the backend named window %d of %d", v.Refused, n)
	}
	if err != nil {
		c := cs[idx[0]]
		l.observe(agent, c.label, ResultUnavailable)
		return &Refusal{Agent: agent, Budget: c.budget, RetryAfter: l.retry, Err: err}
	}
	if v.Refused >= 0 {
		c := cs[idx[v.Refused]]
		l.observe(agent, c.label, ResultRefused)
		return &Refusal{Agent: agent, Budget: c.budget, RetryAfter: v.RetryAfter}
	}
	for _, i := range idx[:n] {
		l.observe(agent, cs[i].label, ResultAllowed)
	}
	return nil
}

func (l *Limiter) observe(agent, label, result string) {
	if l.obs != nil {
		l.obs.BudgetDecision(agent, label, result)
	}
}

// ErrUnavailable is wrapped by a backend that cannot reach its state.
var ErrUnavailable = errors.New("budget: the budget state is unavailable")
