package proxy

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/budget"
	"keyhole/redisstate/redistest"
)

// benchBudgetRules is the rules of BenchmarkBudgetRequest: billing's
// requests with KEY fall under BUDGET (a budget that admits them all, or
// nothing).
const benchBudgetRules = `
agents:
  billing:
    token: env:PROXY_BENCH_TOKEN
    secrets: [KEY]
    BUDGET
` + benchKeyRules + benchResolve

// redisCommands is a go-redis hook counting commands.
type redisCommands struct{ n atomic.Int64 }

func (c *redisCommands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *redisCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *redisCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// BenchmarkBudgetRequest measures one keep-alive request with a secret
// injected, one at a time, reporting p50 and p99: without a budget (the
// baseline), without a budget on a proxy whose budgets are in Redis (it
// must cost the same and send Redis nothing: redis-cmds/op), and under a
// budget in-process and in Redis.
func BenchmarkBudgetRequest(b *testing.B) {
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	setBenchKey(b)
	b.Setenv("PROXY_BENCH_TOKEN", "bench-token-1")
	srv := redistest.Start(b, redistest.Options{})
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	client := redis.NewClient(opts)
	b.Cleanup(func() { client.Close() })
	var count redisCommands
	client.AddHook(&count)
	backend, err := budget.NewRedis(budget.RedisConfig{Client: client})
	if err != nil {
		b.Fatal(err)
	}
	const budgetYAML = "budgets: [{secrets: [KEY], requests: 1000000, per: 1s}]"
	for _, bc := range []struct {
		name   string
		budget string
		redis  bool
	}{
		{"no-budget", "", false},
		{"no-budget-redis", "", true},
		{"memory", budgetYAML, false},
		{"redis", budgetYAML, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tp := startTestProxyWith(b, up, strings.Replace(benchBudgetRules, "BUDGET", bc.budget, 1), Config{}, func(d *Deps) {
				if bc.redis {
					d.Budgets = budget.New(budget.Config{Backend: backend, Name: "redis", Timeout: 10 * time.Second})
				}
			})
			c := tp.agentClient("billing", "bench-token-1", false)
			req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/small", nil)
			req.Header.Set("Authorization", "Bearer <<KEY>>")
			do := func() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("got %d", resp.StatusCode)
				}
			}
			do() // the tunnel
			lat := make([]time.Duration, 0, b.N)
			before := count.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				do()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(count.n.Load()-before)/float64(b.N), "redis-cmds/op")
		})
	}
}
