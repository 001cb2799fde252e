package proxy

import (
	"net/http"
	"time"

	"keyhole/budget"
	"keyhole/inject"
	"keyhole/rules"
)

// budgetBody is the budget named in a budget_exceeded refusal.
type budgetBody struct {
	Agent    string   `json:"agent"`
	Index    int      `json:"index"` // in agents.AGENT.budgets
	Secrets  []string `json:"secrets,omitempty"`
	Requests int      `json:"requests"`
	Per      string   `json:"per"`
	// RetryAfter is the Retry-After header's value, in seconds, and FreesAt
	// the time it points to.
	RetryAfter int       `json:"retry_after"`
	FreesAt    time.Time `json:"frees_at"`
	// Unavailable is set when the budgets could not be checked (the shared
	// budget state is unreachable or stale) rather than found full.
	Unavailable bool `json:"unavailable,omitempty"`
}

// checkBudgets is the step between the policy and the credentials: it
// counts the request, which the policy allowed and which uses the secrets
// used, against its agent's budgets, and returns the refusal to send when
// one is full or they cannot be checked; nil lets the request go on.
// Nothing has been minted or dialed yet.
func (x *exchange) checkBudgets(t inject.Target, used []string) *http.Response {
	r := x.p.budgets.Check(x.req.Context(), x.pol.budgets, x.caller.Agent, used)
	if r == nil {
		return nil
	}
	x.rec.Budget = r.Label()
	if r.Err != nil {
		x.rec.Error = "budget_state_unavailable"
		x.p.log.Warn("budget check failed; refusing the request", "request_id", x.rec.RequestID,
			"agent", r.Agent, "budget", x.rec.Budget, "error", r.Err)
	}
	ref := &inject.Refusal{Reason: inject.BudgetExceeded, Host: t.Host, Message: r.Message()}
	return x.refuseWith(ref, newBudgetBody(r))
}

func newBudgetBody(r *budget.Refusal) *budgetBody {
	secs := r.RetryAfterSeconds()
	return &budgetBody{
		Agent:       r.Agent,
		Index:       r.Budget.Index,
		Secrets:     r.Budget.Secrets,
		Requests:    r.Budget.Requests,
		Per:         rules.FormatBudgetPer(r.Budget.Per),
		RetryAfter:  secs,
		FreesAt:     time.Now().Add(r.RetryAfter).UTC().Round(time.Millisecond),
		Unavailable: r.Err != nil,
	}
}
