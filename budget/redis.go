package budget

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript is the whole of one check, atomic in Redis: for every window
// (KEYS[i], with its requests ARGV[2i+1] and length in ms ARGV[2i+2]) it
// drops the entries at or before now-per and counts the rest; the first
// window that is full is the answer, {i, ms until it frees}, and nothing is
// added. Otherwise the request's member (ARGV[2]) is added to every window
// at now, each key expiring when its window would be empty, and the
// answer is {0, 0}. now is ARGV[1] in ms, or the server's clock when
// ARGV[1] is empty: one clock for every replica.
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local per = tonumber(ARGV[2 * i + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local e = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return {i, tonumber(e[2]) + per - now}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 2]))
end
return {0, 0}
`)

// Redis keeps windows in Redis, shared by every replica that uses the same
// server: each window a sorted set of admitted requests scored by their
// time in ms, each check one script (see takeScript). It holds no secret:
// keys name agents, secrets and windows, members are random ids.
type Redis struct {
	client redis.Scripter
	// now, when set, is the clock (tests); nil uses the server's.
	now func() time.Time
	// fresh, when set, reports an error while the shared state is stale.
	fresh func() error
	// prefix and seq make each request's member unique across replicas.
	prefix string
	seq    atomic.Uint64
}

// RedisConfig configures a Redis backend.
type RedisConfig struct {
	// Client is the connection to Redis; required.
	Client redis.Scripter
	// Now is the clock of the windows; nil (the default, for production)
	// uses the Redis server's clock, the one clock every replica shares.
	Now func() time.Time
	// Fresh, when set, is asked before every check; while it returns an
	// error (the shared state is stale), checks fail without asking Redis.
	Fresh func() error
}

// NewRedis returns a Redis backend.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("budget: a Redis client is required")
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("budget: %w", err)
	}
	return &Redis{client: cfg.Client, now: cfg.Now, fresh: cfg.Fresh, prefix: hex.EncodeToString(id) + ":"}, nil
}

// Take implements Backend.
func (r *Redis) Take(ctx context.Context, ws []Window) (Verdict, error) {
	if r.fresh != nil {
		if err := r.fresh(); err != nil {
			return Verdict{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	keys := make([]string, len(ws))
	args := make([]any, 2, 2+2*len(ws))
	args[0] = ""
	if r.now != nil {
		args[0] = strconv.FormatInt(r.now().UnixMilli(), 10)
	}
	args[1] = r.prefix + strconv.FormatUint(r.seq.Add(1), 36)
	for i, w := range ws {
		keys[i] = w.Key
		args = append(args, w.Requests, w.Per.Milliseconds())
	}
	res, err := r.run(ctx, keys, args)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(res) != 2 {
		return Verdict{}, fmt.Errorf("%w: the script answered %d values", ErrUnavailable, len(res))
	}
	if res[0] == 0 {
		return Verdict{Refused: -1}, nil
	}
	return Verdict{Refused: int(res[0]) - 1, RetryAfter: time.Duration(res[1]) * time.Millisecond}, nil
}

// run runs the script, returning when ctx ends even if the client does
// not: go-redis bounds reads by its own ReadTimeout (3 s by default) unless
// the client has ContextTimeoutEnabled, and a budget check must not wait
// that long. The call left behind ends at the client's timeout.
func (r *Redis) run(ctx context.Context, keys []string, args []any) ([]int64, error) {
	type answer struct {
		res []int64
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
		done <- answer{res, err}
	}()
	select {
	case a := <-done:
		return a.res, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

var _ Backend = (*Redis)(nil)
