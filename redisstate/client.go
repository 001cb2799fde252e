// Package redisstate is the state that keyhole replicas share through
// Redis (KEYHOLE_REDIS_URL): the connection and its health, revocations,
// the store, and the lock that keeps replicas from minting the same
// credential at once.
//
// The request path never waits on Redis: every replica keeps a local copy
// of what it needs, fed by pub/sub and a periodic resync. When Redis has
// been unreachable for longer than the stale limit (KEYHOLE_REDIS_STALE,
// default 10 s) the replica reports itself stale: /readyz turns not-ready
// and minted tokens are refused (a revocation could have been missed).
//
// Redis never holds a secret value in the clear: store entries and minted
// credentials are sealed with the store key (AES-256-GCM) before they are
// written.
package redisstate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/upstream"
)

// DefaultStale is how long Redis may be unreachable before a replica is
// stale, when the setting is zero.
const DefaultStale = 10 * time.Second

// pingInterval is how often the connection is checked.
const pingInterval = time.Second

// dialTimeout bounds connecting to Redis and each command of the
// background loops.
const dialTimeout = 3 * time.Second

// Options say how to reach Redis; they are keyhole's KEYHOLE_REDIS_*
// settings.
type Options struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://... (TLS,
	// verified against the system roots plus CAFile). Empty: no shared
	// state, everything stays in the state dir.
	URL string `env:"KEYHOLE_REDIS_URL"`
	// CAFile is a PEM file of extra roots for rediss://.
	CAFile string `env:"KEYHOLE_REDIS_CA_FILE"`
	// Stale is how long Redis may be unreachable before Stale reports
	// true; zero means DefaultStale.
	Stale time.Duration `env:"KEYHOLE_REDIS_STALE" envDefault:"10s"`
}

// Client is one replica's connection to the shared Redis and its health.
// It is safe for concurrent use.
type Client struct {
	rdb   *redis.Client
	where string // the URL without its password, for messages
	stale time.Duration

	lastOK  atomic.Int64 // unix nanoseconds of the last answer from Redis
	healthy atomic.Bool  // the last check was answered

	mu        sync.Mutex
	onRecover []func(context.Context)
}

// Open connects to Redis and checks that it answers (and accepts the
// password) within a few seconds. Its errors never hold the password.
func Open(ctx context.Context, o Options) (*Client, error) {
	opts, where, err := parseURL(o.URL)
	if err != nil {
		return nil, err
	}
	if opts.TLSConfig != nil {
		roots, err := upstream.Roots(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("KEYHOLE_REDIS_CA_FILE: %w", err)
		}
		opts.TLSConfig = &tls.Config{RootCAs: roots, ServerName: opts.TLSConfig.ServerName, MinVersion: tls.VersionTLS12}
	} else if o.CAFile != "" {
		return nil, fmt.Errorf("KEYHOLE_REDIS_CA_FILE is set but KEYHOLE_REDIS_URL %s is not rediss://", where)
	}
	opts.DialTimeout = dialTimeout
	opts.ReadTimeout = dialTimeout
	opts.WriteTimeout = dialTimeout
	opts.MaxRetries = 1
	opts.ContextTimeoutEnabled = true
	c := &Client{rdb: redis.NewClient(opts), where: where, stale: o.Stale}
	if c.stale <= 0 {
		c.stale = DefaultStale
	}
	pctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	if err := c.rdb.Ping(pctx).Err(); err != nil {
		_ = c.rdb.Close()
		return nil, fmt.Errorf("redis at %s: %w", where, redact(err, opts.Password))
	}
	c.markOK()
	return c, nil
}

// parseURL reads KEYHOLE_REDIS_URL. Its errors quote no part of the URL
// that could hold the password.
func parseURL(raw string) (*redis.Options, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", errors.New("KEYHOLE_REDIS_URL is not a URL (want redis://[user:password@]host:port[/db] or rediss://...)")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", fmt.Errorf("KEYHOLE_REDIS_URL has scheme %q; want redis:// or rediss://", u.Scheme)
	}
	where := u.Redacted()
	if u.Host == "" {
		return nil, "", fmt.Errorf("KEYHOLE_REDIS_URL %s names no host", where)
	}
	pw, _ := u.User.Password()
	opts, err := redis.ParseURL(raw)
	if err != nil {
		return nil, "", fmt.Errorf("KEYHOLE_REDIS_URL %s: %w", where, redact(err, pw))
	}
	return opts, where, nil
}

// redact is err with every occurrence of secret replaced, so that no
// message repeats the password.
func redact(err error, secret string) error {
	msg := err.Error()
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "xxxxx")
	}
	if strings.Contains(msg, "WRONGPASS") || strings.Contains(msg, "NOAUTH") {
		msg += " (check the user and password in KEYHOLE_REDIS_URL)"
	}
	return errors.New(msg)
}

// Redis is the client for other packages' own commands (budgets).
func (c *Client) Redis() redis.UniversalClient { return c.rdb }

// Where is the URL without its password.
func (c *Client) Where() string { return c.where }

// Close closes the connection.
func (c *Client) Close() error { return c.rdb.Close() }

// Healthy reports whether Redis answered the last check (at most a couple
// of seconds ago). Budgets fail closed when it is false; a nil Client is
// never healthy.
func (c *Client) Healthy() bool {
	if c == nil {
		return false
	}
	return c.healthy.Load() && time.Since(time.Unix(0, c.lastOK.Load())) < 3*pingInterval+dialTimeout
}

// Stale reports whether Redis has not answered for longer than the stale
// limit: the local copies may have missed changes. A nil Client (no
// shared state) is never stale.
func (c *Client) Stale() bool {
	if c == nil {
		return false
	}
	return time.Since(time.Unix(0, c.lastOK.Load())) > c.stale
}

// StaleAfter is the stale limit.
func (c *Client) StaleAfter() time.Duration { return c.stale }

// Ready is nil while the replica is not stale, else why it is; nil for a
// nil Client.
func (c *Client) Ready() error {
	if c == nil {
		return nil
	}
	if c.Stale() {
		return fmt.Errorf("the shared state (redis at %s) has not answered for more than %s", c.where, c.stale)
	}
	return nil
}

// OnRecover registers f, called (in the health loop's goroutine) each
// time Redis answers again after a failed check, so that local copies
// resync.
func (c *Client) OnRecover(f func(context.Context)) {
	c.mu.Lock()
	c.onRecover = append(c.onRecover, f)
	c.mu.Unlock()
}

func (c *Client) markOK() {
	c.lastOK.Store(time.Now().UnixNano())
	c.healthy.Store(true)
}

// Run checks Redis every second until ctx ends, keeping Healthy and Stale
// current and calling the OnRecover functions when Redis comes back.
// onChange, when not nil, is told of each change of health.
func (c *Client) Run(ctx context.Context, onChange func(healthy bool, err error)) {
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := c.rdb.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		was := c.healthy.Load()
		if err != nil {
			c.healthy.Store(false)
			if was && onChange != nil {
				onChange(false, redact(err, c.rdb.Options().Password))
			}
			continue
		}
		c.markOK()
		if !was {
			if onChange != nil {
				onChange(true, nil)
			}
			c.mu.Lock()
			fs := append([]func(context.Context){}, c.onRecover...)
			c.mu.Unlock()
			for _, f := range fs {
				f(ctx)
			}
		}
	}
}

// touch records an answer from Redis seen elsewhere (a pub/sub message or
// a resync), so that staleness does not wait for the next check.
func (c *Client) touch() { c.lastOK.Store(time.Now().UnixNano()) }

// SetLog sends the Redis client library's own messages (reconnections) to
// log at debug level instead of stderr; the health changes are logged by
// Run's caller.
func SetLog(log *slog.Logger) { redis.SetLogger(libLog{log}) }

type libLog struct{ log *slog.Logger }

func (l libLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug("redis client: " + fmt.Sprintf(format, v...))
}
