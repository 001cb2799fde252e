package budget

import (
	"context"
	"slices"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
	"keyhole/rules"
)

// benchRules has an agent whose budget admits every request of the
// benchmark (so that each check adds to the window) and one without.
const benchRules = `
secrets:
  KEY: {source: env:X, hosts: [api.example.test]}
agents:
  bench:
    token: env:T
    secrets: [KEY]
    budgets:
      - {secrets: [KEY], requests: 1000000, per: 1s}
  free:
    token: env:T
    secrets: [KEY]
`

// BenchmarkCheck measures Limiter.Check, reporting its p50 and p99: for
// an agent without a budget (with a Redis limiter: it must not matter),
// and for an agent with one, in-process and in Redis.
func BenchmarkCheck(b *testing.B) {
	set, err := rules.Parse("bench.yaml", []byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	plan := Compile(set)
	srv := redistest.Start(b, redistest.Options{})
	client := newRedisClient(b, srv)
	var count commandCounter
	client.AddHook(&count)
	r, err := NewRedis(RedisConfig{Client: client})
	if err != nil {
		b.Fatal(err)
	}
	// A long timeout: the benchmark measures how long checks take, and
	// counts those over the default 100 ms (over-100ms/op), which would
	// have refused their request.
	redisLimiter := New(Config{Backend: r, Name: "redis", Timeout: 10 * time.Second})
	used := []string{"KEY"}
	for _, bc := range []struct {
		name  string
		l     *Limiter
		agent string
	}{
		{"no-budget-redis", redisLimiter, "free"},
		{"memory", New(Config{}), "bench"},
		{"redis", redisLimiter, "bench"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			before := count.n.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if ref := bc.l.Check(ctx, plan, bc.agent, used); ref != nil {
					b.Fatal(ref.Message())
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, lat)
			b.ReportMetric(float64(count.n.Load()-before)/float64(b.N), "redis-cmds/op")
		})
	}
}

// reportPercentiles reports the p50 and p99 of lat, and the share over
// 100 ms.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	i, _ := slices.BinarySearch(lat, 100*time.Millisecond)
	b.ReportMetric(float64(len(lat)-i)/float64(len(lat)), "over-100ms/op")
}
