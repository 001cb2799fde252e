package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/credential"
	"keyhole/store"
)

// Key prefixes of the shared minted credentials.
const (
	credKeyPrefix  = "keyhole:cred:"
	credLockPrefix = "keyhole:credlock:"
)

// Credentials is credential.Shared in Redis: a minted credential is kept
// sealed with the store key (bound to its key name) until its refresh
// time, and its mint lock is SET NX PX, released only by its holder (a
// compare-and-delete script) and otherwise expiring.
type Credentials struct {
	c      *Client
	sealer *store.Sealer
}

var _ credential.Shared = (*Credentials)(nil)

// NewCredentials returns the shared credentials over c.
func NewCredentials(c *Client, sealer *store.Sealer) *Credentials {
	return &Credentials{c: c, sealer: sealer}
}

// Load implements credential.Shared.
func (s *Credentials) Load(ctx context.Context, key string) ([]byte, time.Time, bool, error) {
	b, err := s.c.rdb.Get(ctx, credKeyPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, s.c.fail("minted credential", err)
	}
	plain, err := s.sealer.Open("cred:"+key, b)
	if err != nil || len(plain) < 8 {
		return nil, time.Time{}, false, nil // mint anew
	}
	refreshAt := time.UnixMilli(int64(binary.BigEndian.Uint64(plain[:8])))
	return plain[8:], refreshAt, true, nil
}

// Store implements credential.Shared.
func (s *Credentials) Store(ctx context.Context, key string, value []byte, refreshAt time.Time) error {
	ttl := time.Until(refreshAt)
	if ttl < time.Second {
		return nil
	}
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(refreshAt.UnixMilli()))
	plain = append(plain, value...)
	sealed, err := s.sealer.Seal("cred:"+key, plain)
	clear(plain)
	if err != nil {
		return err
	}
	if err := s.c.rdb.Set(ctx, credKeyPrefix+key, sealed, ttl).Err(); err != nil {
		return s.c.fail("minted credential", err)
	}
	return nil
}

// unlockScript deletes the lock only if it still holds the holder's token.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Lock implements credential.Shared.
func (s *Credentials) Lock(ctx context.Context, key string, ttl time.Duration) (func(), bool, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ok, err := s.c.rdb.SetNX(ctx, credLockPrefix+key, token, ttl).Result()
	if err != nil {
		return nil, false, s.c.fail("mint lock", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
		defer cancel()
		_ = unlockScript.Run(uctx, s.c.rdb, []string{credLockPrefix + key}, token).Err()
	}, true, nil
}
