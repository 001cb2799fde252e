package credential

import (
	"context"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// DefaultCacheSize bounds a Cache whose size is zero.
const DefaultCacheSize = 4096

// Fetch mints a credential. It returns the credential and when it must be
// fetched again (its expiry less the kind's safety margin).
type Fetch[V any] func(ctx context.Context) (V, time.Time, error)

// Cache keeps minted credentials by key until their refresh time and makes
// concurrent requests for the same missing key share one fetch. K is
// comparable, so that a hit costs no formatting; only a miss turns the key
// into a string, for the fetch's singleflight group. It is
// bounded (least recently used entries go first) and safe for concurrent
// use. Failures are not cached: the next request tries again.
type Cache[K comparable, V any] struct {
	// Timeout bounds one fetch; default 10s. A fetch runs on its own
	// context, so that one caller giving up does not fail the others
	// waiting for it.
	Timeout time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Shared, when its Shared is set, shares credentials with other
	// replicas (see Shared); a fetch may then also wait for another
	// replica's, up to twice Timeout.
	Shared SharedCodec[K, V]

	entries *lru.Cache[K, entry[V]]
	group   singleflight.Group
}

type entry[V any] struct {
	v         V
	refreshAt time.Time
}

// NewCache returns a cache of at most size entries (DefaultCacheSize when
// size is zero or less).
func NewCache[K comparable, V any](size int) *Cache[K, V] {
	if size <= 0 {
		size = DefaultCacheSize
	}
	entries, _ := lru.New[K, entry[V]](size) // only a size <= 0 fails
	return &Cache[K, V]{entries: entries}
}

// Get returns the credential under key, calling fetch when there is none
// or it is due for refresh. It returns ctx's error if ctx ends first.
func (c *Cache[K, V]) Get(ctx context.Context, key K, fetch Fetch[V]) (V, error) {
	if e, ok := c.entries.Get(key); ok && c.now().Before(e.refreshAt) {
		return e.v, nil
	}
	ch := c.group.DoChan(fmt.Sprintf("%v", key), func() (any, error) {
		// A caller that waited behind a fetch that just finished finds
		// its result here rather than fetching again.
		if e, ok := c.entries.Get(key); ok && c.now().Before(e.refreshAt) {
			return e.v, nil
		}
		var (
			v         V
			refreshAt time.Time
			err       error
		)
		if c.Shared.Shared != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*c.timeout())
			defer cancel()
			v, refreshAt, err = c.fetchShared(sctx, key, fetch)
		} else {
			v, refreshAt, err = c.fetchLocal(context.Background(), fetch)
		}
		if err != nil {
			return v, err
		}
		c.entries.Add(key, entry[V]{v: v, refreshAt: refreshAt})
		return v, nil
	})
	select {
	case r := <-ch:
		v, _ := r.Val.(V)
		return v, r.Err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// Len returns the number of cached credentials.
func (c *Cache[K, V]) Len() int { return c.entries.Len() }

func (c *Cache[K, V]) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache[K, V]) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}
