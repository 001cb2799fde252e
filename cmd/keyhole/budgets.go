package main

import (
	"errors"
	"time"

	"keyhole/budget"
	"keyhole/metrics"
	"keyhole/redisstate"
)

// budgetLimiter returns the limiter of the rules' budgets: in Redis when
// replicas share one (shared not nil), so that a budget holds across them,
// else in this process.
func budgetLimiter(shared *redisstate.Client, timeout time.Duration, m *metrics.Metrics) (*budget.Limiter, error) {
	if shared == nil {
		return budget.New(budget.Config{Observer: m}), nil
	}
	r, err := budget.NewRedis(budget.RedisConfig{
		Client: shared.Redis(),
		// Budgets fail closed: while the health loop's last check went
		// unanswered, refuse at once rather than wait out the timeout on
		// every request.
		Fresh: func() error {
			if !shared.Healthy() {
				return errors.New("redis did not answer the last health check")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return budget.New(budget.Config{Backend: r, Name: "redis", Timeout: timeout, Observer: m}), nil
}
