package budget

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/redisstate/redistest"
)

// newRedisClient returns a client of a redis-server started for the test.
func newRedisClient(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// commandCounter is a go-redis hook counting the commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	client := newRedisClient(t, srv)
	runBackendTests(t, func(t *testing.T, now func() time.Time) Backend {
		if err := client.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		r, err := NewRedis(RedisConfig{Client: client, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

// TestRedisConcurrent takes 300 requests at once, on the server's clock,
// through three backends (three replicas' worth) sharing the server.
func TestRedisConcurrent(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	var bs []Backend
	for range 3 {
		r, err := NewRedis(RedisConfig{Client: newRedisClient(t, srv)})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, r)
	}
	runConcurrent(t, &roundRobin{bs: bs}, 300)
	// The sorted set holds the 100 admitted requests, and expires.
	c := newRedisClient(t, srv)
	if n, err := c.ZCard(context.Background(), "k:concurrent").Result(); err != nil || n != 100 {
		t.Fatalf("got %d entries (%v), want 100", n, err)
	}
	if ttl, err := c.PTTL(context.Background(), "k:concurrent").Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("got a TTL of %v (%v), want at most 1h", ttl, err)
	}
}

// roundRobin spreads takes over several backends.
type roundRobin struct {
	bs []Backend
	n  atomic.Int64
}

func (r *roundRobin) Take(ctx context.Context, ws []Window) (Verdict, error) {
	return r.bs[int(r.n.Add(1))%len(r.bs)].Take(ctx, ws)
}

// TestRedisCommands checks that a request without a budget sends Redis
// nothing and that a check is one command (the script).
func TestRedisCommands(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	client := newRedisClient(t, srv)
	var count commandCounter
	client.AddHook(&count)
	r, err := NewRedis(RedisConfig{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{Backend: r, Name: "redis", Timeout: 10 * time.Second}) // a loaded machine can miss 100 ms
	plan := testPlan(t)
	ctx := context.Background()
	if ref := l.Check(ctx, plan, "billing", []string{"STRIPE_LIVE"}); ref != nil {
		t.Fatalf("got %v, want admitted", ref.Message())
	}
	tests := []struct {
		name  string
		agent string
		used  []string
		want  int64
	}{
		{"an agent without budgets", "reader", []string{"STRIPE_LIVE"}, 0},
		{"an unknown agent", "nobody", nil, 0},
		{"no budget names the secrets", "search", []string{"OPENAI"}, 0},
		{"a budget applies: one script", "billing", []string{"STRIPE_LIVE"}, 1},
		{"two budgets apply: still one script", "search", []string{"STRIPE_LIVE", "GITHUB"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := count.n.Load()
			if ref := l.Check(ctx, plan, tc.agent, tc.used); ref != nil {
				t.Fatalf("got %v, want admitted", ref.Message())
			}
			if got := count.n.Load() - before; got != tc.want {
				t.Fatalf("got %d commands, want %d", got, tc.want)
			}
		})
	}
}

// TestRedisUnavailable checks that budgets fail closed: a dead server, a
// server that does not answer in time, and stale state all refuse.
func TestRedisUnavailable(t *testing.T) {
	plan := testPlan(t)
	ctx := context.Background()

	srv := redistest.Start(t, redistest.Options{})
	r, err := NewRedis(RedisConfig{Client: newRedisClient(t, srv)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	l := New(Config{Backend: r, Name: "redis", Timeout: 2 * time.Second})
	ref := l.Check(ctx, plan, "billing", []string{"STRIPE_LIVE"})
	if ref == nil || !errors.Is(ref.Err, ErrUnavailable) || ref.RetryAfterSeconds() != 1 {
		t.Fatalf("server gone: got %+v, want a refusal wrapping ErrUnavailable, retry 1 s", ref)
	}
	if ref := l.Check(ctx, plan, "reader", nil); ref != nil {
		t.Fatalf("server gone, agent without budgets: got %v, want admitted", ref.Message())
	}

	// A listener that accepts and never answers: the timeout refuses.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	silent := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer silent.Close()
	r, _ = NewRedis(RedisConfig{Client: silent})
	l = New(Config{Backend: r, Name: "redis", Timeout: 100 * time.Millisecond})
	start := time.Now()
	ref = l.Check(ctx, plan, "billing", []string{"STRIPE_LIVE"})
	if ref == nil || !errors.Is(ref.Err, ErrUnavailable) {
		t.Fatalf("silent server: got %+v, want a refusal wrapping ErrUnavailable", ref)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("silent server: the check took %v, want about the 100 ms timeout", took)
	}

	// Stale state: refused without asking Redis.
	srv2 := redistest.Start(t, redistest.Options{})
	client := newRedisClient(t, srv2)
	var count commandCounter
	client.AddHook(&count)
	stale := errors.New("no word from Redis for 11s")
	r, _ = NewRedis(RedisConfig{Client: client, Fresh: func() error { return stale }})
	l = New(Config{Backend: r, Name: "redis"})
	ref = l.Check(ctx, plan, "billing", []string{"STRIPE_LIVE"})
	if ref == nil || !errors.Is(ref.Err, ErrUnavailable) || !errors.Is(ref.Err, stale) || count.n.Load() != 0 {
		t.Fatalf("stale: got %+v after %d commands, want a refusal and no command", ref, count.n.Load())
	}
}
