package redisstate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/tokens"
)

// Keys and channels of the revocations in Redis.
const (
	// RevokedKey is the set of revoked token ids.
	RevokedKey = "keyhole:revoked"
	// RevokedChannel carries each newly revoked id.
	RevokedChannel = "keyhole:revoked"
)

// ResyncInterval is how often a replica reads the shared state whole, on
// top of the pub/sub messages (which Redis does not keep for a replica
// that was away).
const ResyncInterval = 5 * time.Second

// maxRevokedIDs bounds the set read from Redis, like the revocation file.
const maxRevokedIDs = 300_000

// Revoke adds id to the shared revocations and tells every replica. The
// caller has already written it to its revocation file.
func Revoke(ctx context.Context, c *Client, id string) error {
	if err := tokens.CheckID(id); err != nil {
		return err
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redisPipe) error {
		p.SAdd(ctx, RevokedKey, id)
		p.Publish(ctx, RevokedChannel, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke %s in redis at %s: %w", id, c.where, redact(err, c.rdb.Options().Password))
	}
	return nil
}

// Revocations is a replica's copy of the shared revocations, a
// tokens.SharedList: looked up without waiting, fed by pub/sub and a resync
// every ResyncInterval, which also publishes what the replica knows and
// Redis does not (after a FLUSHALL or a Redis that came back empty). Ids
// are never dropped from the copy: a revocation is for good.
type Revocations struct {
	c    *Client
	file *tokens.Revocations // the replica's revocation file, republished

	ids atomic.Pointer[map[string]struct{}]
	mu  sync.Mutex // serializes writers of ids

	// Republished counts ids this replica wrote back to Redis because
	// Redis had lost them.
	Republished atomic.Int64
}

// NewRevocations returns the shared revocations over c, republishing the
// ids of file (which may be nil). Call Run to follow them; file.Share(r)
// puts them in force.
func NewRevocations(c *Client, file *tokens.Revocations) *Revocations {
	r := &Revocations{c: c, file: file}
	empty := map[string]struct{}{}
	r.ids.Store(&empty)
	return r
}

// Has reports whether id is revoked in the local copy.
func (r *Revocations) Has(id string) bool {
	_, ok := (*r.ids.Load())[id]
	return ok
}

// Stale reports whether the copy may have missed revocations.
func (r *Revocations) Stale() bool { return r.c.Stale() }

// Len is the number of ids in the local copy.
func (r *Revocations) Len() int { return len(*r.ids.Load()) }

// add puts ids into the local copy (copy on write).
func (r *Revocations) add(ids ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.ids.Load()
	missing := false
	for _, id := range ids {
		if _, ok := old[id]; !ok {
			missing = true
			break
		}
	}
	if !missing {
		return
	}
	m := make(map[string]struct{}, len(old)+len(ids))
	for id := range old {
		m[id] = struct{}{}
	}
	for _, id := range ids {
		m[id] = struct{}{}
	}
	r.ids.Store(&m)
}

// Resync reads the whole set from Redis into the copy and writes back the
// ids Redis lacks (the copy's and the revocation file's).
func (r *Revocations) Resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	n, err := r.c.rdb.SCard(ctx, RevokedKey).Result()
	if err != nil {
		return r.c.fail("read revocations", err)
	}
	if n > maxRevokedIDs {
		return fmt.Errorf("redis at %s holds %d revoked ids, more than %d; refusing to read them", r.c.where, n, maxRevokedIDs)
	}
	remote, err := r.c.rdb.SMembers(ctx, RevokedKey).Result()
	if err != nil {
		return r.c.fail("read revocations", err)
	}
	r.c.touch()
	var valid []string
	have := make(map[string]struct{}, len(remote))
	for _, id := range remote {
		if tokens.CheckID(id) == nil {
			valid = append(valid, id)
			have[id] = struct{}{}
		}
	}
	r.add(valid...)
	var lost []any
	for id := range *r.ids.Load() {
		if _, ok := have[id]; !ok {
			lost = append(lost, id)
		}
	}
	for _, id := range r.file.IDs() {
		if _, ok := have[id]; !ok {
			r.add(id)
			lost = append(lost, id)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	if err := r.c.rdb.SAdd(ctx, RevokedKey, lost...).Err(); err != nil {
		return r.c.fail("republish revocations", err)
	}
	r.Republished.Add(int64(len(lost)))
	return nil
}

// Run follows the revocations until ctx ends: pub/sub messages as they
// come, a resync every ResyncInterval and whenever Redis answers again.
// onErr, which may be nil, is told of failed resyncs.
func (r *Revocations) Run(ctx context.Context, onErr func(error)) {
	follow(ctx, r.c, RevokedChannel, func(id string) {
		if tokens.CheckID(id) == nil {
			r.add(id)
		}
	}, r.Resync, onErr)
}
