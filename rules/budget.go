package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bounds of a budget: a window from MinBudgetPer to MaxBudgetPer admitting
// at most MaxBudgetRequests requests. The window is a log of admitted
// times, so its memory (in-process or in Redis) grows with Requests.
const (
	MinBudgetPer      = time.Second
	MaxBudgetPer      = 31 * 24 * time.Hour
	MaxBudgetRequests = 1_000_000
	// maxBudgets bounds an agent's budgets list, and with it the work of
	// one request's budget check.
	maxBudgets = 16
)

// Budget is a sliding-window rate limit on an agent's requests: at most
// Requests requests in any window of length Per.
type Budget struct {
	// Index is the budget's position in the agent's budgets list.
	Index int
	// Secrets lists, sorted, the secrets whose requests count: a request
	// counts when it uses at least one of them. Nil: every request of the
	// agent counts.
	Secrets []string
	// Requests is how many requests a window admits, at least 1.
	Requests int
	// Per is the window's length, from MinBudgetPer to MaxBudgetPer.
	Per time.Duration
	// Line is the line of the budget in the rules file.
	Line int
}

// Applies reports whether a request that uses the secrets used (sorted or
// not) counts against b.
func (b *Budget) Applies(used []string) bool {
	if b.Secrets == nil {
		return true
	}
	for _, s := range used {
		if _, ok := slices.BinarySearch(b.Secrets, s); ok {
			return true
		}
	}
	return false
}

// String describes b for messages and metric labels: "STRIPE_LIVE:100/1h",
// or "*:5000/24h" for a budget over every request.
func (b *Budget) String() string {
	scope := "*"
	if b.Secrets != nil {
		scope = strings.Join(b.Secrets, ",")
	}
	return scope + ":" + strconv.Itoa(b.Requests) + "/" + FormatBudgetPer(b.Per)
}

// FormatBudgetPer writes a window's length as the rules file would: "1h",
// "30m", "90s", "7d", "1h30m".
func FormatBudgetPer(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseBudgetPer parses a window's length: a Go duration ("1h", "90s",
// "1h30m") or a whole number of days ("7d").
func ParseBudgetPer(s string) (time.Duration, error) {
	want := fmt.Errorf("want a duration from %s to %s, such as 1h, 30m or 7d", FormatBudgetPer(MinBudgetPer), FormatBudgetPer(MaxBudgetPer))
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || days != strconv.Itoa(n) || n > int(MaxBudgetPer/(24*time.Hour)) {
			return 0, want
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, want
		}
	}
	if d < MinBudgetPer || d > MaxBudgetPer {
		return 0, want
	}
	return d, nil
}

// budgets parses the budgets list of agent a, whose secrets are parsed;
// defined holds the names of the secrets section.
func (l *loader) budgets(p pair, a *Agent, defined map[string]bool) []Budget {
	items, ok := l.list(p)
	if !ok {
		return nil
	}
	if len(items) > maxBudgets {
		l.errorf(p.v.Line, p.field, "at most %d budgets per agent, got %d", maxBudgets, len(items))
	}
	var out []Budget
	seen := make(map[string]string, len(items)) // secrets and window → field
	for i, it := range items {
		b, ok := l.budget(it, i, a, defined)
		if !ok || i >= maxBudgets {
			continue
		}
		key := strings.Join(b.Secrets, ",") + "/" + b.Per.String()
		if b.Secrets == nil {
			key = "*/" + b.Per.String()
		}
		if prev, dup := seen[key]; dup {
			l.errorf(it.v.Line, it.field, "counts the same secrets over the same window as %s (keep the one with the lower requests)", prev)
			continue
		}
		seen[key] = it.field
		out = append(out, b)
	}
	return out
}

// budget parses one item of a budgets list.
func (l *loader) budget(it pair, i int, a *Agent, defined map[string]bool) (Budget, bool) {
	b := Budget{Index: i, Line: it.v.Line}
	f, ok := l.fields(it.v, it.field, "secrets", "requests", "per")
	if !ok {
		return b, false
	}
	valid := true
	if q, ok := f["secrets"]; ok {
		names, ok := parseList(l, q, func(s string) (string, string, error) {
			switch {
			case a.MayUse(s):
			case defined[s]:
				return "", "", fmt.Errorf("the agent may not use %s (list it in agents.%s.secrets)", s, a.Name)
			default:
				return "", "", errors.New("not the name of a secret the agent may use")
			}
			return s, s, nil
		})
		switch {
		case !ok || len(names) < len(q.v.Content):
			valid = false
		case len(names) == 0:
			l.errorf(q.v.Line, q.field, "must not be empty (leave out secrets to count every request of the agent)")
			valid = false
		}
		slices.Sort(names)
		b.Secrets = names
	}
	if q, ok := l.required(f, "requests", it); ok {
		n, err := budgetRequests(q.v)
		if err != nil {
			l.errorf(q.v.Line, q.field, "%v", err)
			valid = false
		}
		b.Requests = n
	} else {
		valid = false
	}
	if q, ok := l.required(f, "per", it); ok {
		if s, ok := l.str(q); ok {
			d, err := ParseBudgetPer(s)
			if err != nil {
				l.errorf(q.v.Line, q.field, "%v", err)
				valid = false
			}
			b.Per = d
		} else {
			valid = false
		}
	} else {
		valid = false
	}
	return b, valid
}

// budgetRequests parses a budget's requests: a plain decimal integer.
func budgetRequests(n *yaml.Node) (int, error) {
	want := fmt.Errorf("want a whole number from 1 to %d", MaxBudgetRequests)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, fmt.Errorf("%v, got %s", want, describe(n))
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || strconv.Itoa(v) != n.Value || v < 1 || v > MaxBudgetRequests {
		return 0, want
	}
	return v, nil
}
