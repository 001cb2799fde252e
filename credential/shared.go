package credential

import (
	"context"
	"time"
)

// Shared is where replicas share minted credentials (redisstate's, in
// Redis): a replica that needs a credential first looks there, and only
// the replica that takes the credential's lock mints it; the others wait
// for its value. Values are opaque bytes here; the implementation seals
// them before they leave the process.
type Shared interface {
	// Load returns the value stored under key and when it must be fetched
	// again; ok is false when there is none (or it is due).
	Load(ctx context.Context, key string) (value []byte, refreshAt time.Time, ok bool, err error)
	// Store keeps value under key until refreshAt.
	Store(ctx context.Context, key string, value []byte, refreshAt time.Time) error
	// Lock takes key's mint lock for at most ttl (a lock that is not
	// released expires); held is false when another replica holds it.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), held bool, err error)
}

// SharedCodec says how a Cache shares its credentials: under which key
// (the same on every replica; "" keeps a credential to this replica) and
// how a credential is turned into bytes and back.
type SharedCodec[K comparable, V any] struct {
	Shared Shared
	Key    func(K) string
	Encode func(V) ([]byte, error)
	Decode func(K, []byte) (V, error)
}

// sharedPoll is how often a replica waiting for another's mint looks for
// its value.
const sharedPoll = 50 * time.Millisecond

// fetchShared fetches through the shared credentials: a value another
// replica stored, else the lock and a mint of our own, else (another
// replica minting) the value once it appears, or the lock once it is
// freed or expired. When the shared store fails the credential is minted
// here: availability over the saving.
func (c *Cache[K, V]) fetchShared(ctx context.Context, key K, fetch Fetch[V]) (V, time.Time, error) {
	sc := c.Shared
	name := sc.Key(key)
	if name == "" {
		return c.fetchLocal(ctx, fetch)
	}
	for {
		if b, refreshAt, ok, err := sc.Shared.Load(ctx, name); err != nil {
			return c.fetchLocal(ctx, fetch)
		} else if ok && c.now().Before(refreshAt) {
			if v, err := sc.Decode(key, b); err == nil {
				return v, refreshAt, nil
			}
		}
		unlock, held, err := sc.Shared.Lock(ctx, name, c.timeout())
		if err != nil {
			return c.fetchLocal(ctx, fetch)
		}
		if held {
			defer unlock()
			v, refreshAt, err := c.fetchLocal(ctx, fetch)
			if err == nil {
				if b, err := sc.Encode(v); err == nil {
					_ = sc.Shared.Store(ctx, name, b, refreshAt)
				}
			}
			return v, refreshAt, err
		}
		select {
		case <-ctx.Done():
			var zero V
			return zero, time.Time{}, ctx.Err()
		case <-time.After(sharedPoll):
		}
	}
}

// fetchLocal runs fetch bounded by the cache's timeout.
func (c *Cache[K, V]) fetchLocal(ctx context.Context, fetch Fetch[V]) (V, time.Time, error) {
	fctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	return fetch(fctx)
}
