package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"keyhole/store"
)

// Keys and channels of the store in Redis.
const (
	// StoreKey is a hash: entry name → the entry sealed with the store key.
	StoreKey = "keyhole:store"
	// StoreChannel carries "set:NAME" for each entry stored and
	// "del:NAME" for each entry deleted.
	StoreChannel = "keyhole:store"
	// EpochKey marks a Redis that holds keyhole's state. Replicas that
	// find it gone (FLUSHALL, a Redis that came back empty) know Redis
	// lost the state, not that every entry was deleted, and write their
	// copies back.
	EpochKey = "keyhole:epoch"
)

// maxStoreEntries bounds the hash read from Redis.
const maxStoreEntries = 100_000

// Store is store.Store on Redis: entries sealed with the store key in a
// hash, changes announced on a channel. Reads come from the replica's
// local copy (sealed, as in Redis), which Run keeps current; writes go to
// Redis and wait for it.
type Store struct {
	c      *Client
	sealer *store.Sealer

	mu      sync.Mutex
	entries map[string]string // name → sealed entry, as last read
	epoch   string            // EpochKey's value as last seen; "" before
	watch   []chan struct{}

	// Republished counts entries written back after Redis lost them.
	Republished atomic.Int64
}

var _ store.Store = (*Store)(nil)

// OpenStore returns the store on Redis, with its local copy read once.
// Call Run to follow changes.
func OpenStore(ctx context.Context, c *Client, sealer *store.Sealer) (*Store, error) {
	s := &Store{c: c, sealer: sealer, entries: map[string]string{}}
	if err := s.Resync(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns the entry from the local copy.
func (s *Store) Get(_ context.Context, name string) (store.Entry, error) {
	s.mu.Lock()
	sealed, ok := s.entries[name]
	s.mu.Unlock()
	if !ok {
		return store.Entry{}, fmt.Errorf("store:%s: %w", name, store.ErrNotFound)
	}
	e, err := s.sealer.OpenEntry(name, []byte(sealed))
	if err != nil {
		return store.Entry{}, err
	}
	if !e.Live(time.Now()) {
		return store.Entry{}, fmt.Errorf("store:%s: %w", name, store.ErrNotFound)
	}
	return e, nil
}

// Put seals e and stores it in Redis, keeping the Created time of the
// entry it replaces.
func (s *Store) Put(ctx context.Context, e store.Entry) error {
	now := time.Now().UTC()
	e.Created, e.Updated = now, now
	old, err := s.c.rdb.HGet(ctx, StoreKey, e.Name).Result()
	switch {
	case err == nil:
		if prev, err := s.sealer.OpenEntry(e.Name, []byte(old)); err == nil {
			e.Created = prev.Created
		}
	case !errors.Is(err, redis.Nil):
		return s.c.fail("store:"+e.Name, err)
	}
	sealed, err := s.sealer.SealEntry(e)
	if err != nil {
		return err
	}
	if err := s.recover(ctx); err != nil {
		return err
	}
	if _, err := s.c.rdb.TxPipelined(ctx, func(p redisPipe) error {
		p.HSet(ctx, StoreKey, e.Name, sealed)
		p.Publish(ctx, StoreChannel, "set:"+e.Name)
		return nil
	}); err != nil {
		return s.c.fail("store:"+e.Name, err)
	}
	s.set(map[string]*string{e.Name: ptr(string(sealed))})
	return nil
}

// Delete removes the entry from Redis.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.recover(ctx); err != nil {
		return err
	}
	var del *redis.IntCmd
	if _, err := s.c.rdb.TxPipelined(ctx, func(p redisPipe) error {
		del = p.HDel(ctx, StoreKey, name)
		p.Publish(ctx, StoreChannel, "del:"+name)
		return nil
	}); err != nil {
		return s.c.fail("store:"+name, err)
	}
	s.set(map[string]*string{name: nil})
	if del.Val() == 0 {
		return fmt.Errorf("store:%s: %w", name, store.ErrNotFound)
	}
	return nil
}

// List describes every entry of the local copy, sorted by name.
func (s *Store) List(context.Context) ([]store.Info, error) {
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.entries))
	sealed := maps.Clone(s.entries)
	s.mu.Unlock()
	out := make([]store.Info, 0, len(names))
	for _, name := range names {
		e, err := s.sealer.OpenEntry(name, []byte(sealed[name]))
		if err != nil {
			return nil, err
		}
		out = append(out, s.sealer.Describe(e))
	}
	return out, nil
}

// Watch returns a channel told of each change of the local copy, by this
// replica or another, until ctx ends.
func (s *Store) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watch = append(s.watch, ch)
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		s.watch = slices.DeleteFunc(s.watch, func(c chan struct{}) bool { return c == ch })
		s.mu.Unlock()
	}()
	return ch
}

// Run follows the store until ctx ends: the entry each message names, and
// the whole hash every ResyncInterval and whenever Redis answers again.
func (s *Store) Run(ctx context.Context, onErr func(error)) {
	follow(ctx, s.c, StoreChannel, func(msg string) {
		op, name, _ := strings.Cut(msg, ":")
		if store.CheckName(name) != nil {
			return
		}
		switch op {
		case "del":
			s.set(map[string]*string{name: nil})
		case "set":
			if err := s.refresh(ctx, name); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}, s.Resync, onErr)
}

// refresh re-reads one entry that was stored. An entry that is not there
// (any more) stays in the copy: only a deletion's message or a resync
// removes one, so that a message read after a FLUSHALL does not pass for a
// deletion.
func (s *Store) refresh(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	v, err := s.c.rdb.HGet(ctx, StoreKey, name).Result()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		return s.c.fail("store:"+name, err)
	default:
		s.set(map[string]*string{name: &v})
	}
	return nil
}

// Resync reads the whole hash into the local copy. The marker and the
// hash are read in one transaction, so that a FLUSHALL between them cannot
// pass for every entry deleted: when the marker is not the one this
// replica saw, Redis lost the state, and the copy is written back (never
// over an entry Redis has) before the hash is read again.
func (s *Store) Resync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*dialTimeout)
	defer cancel()
	epoch, all, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	seen := s.epoch
	s.mu.Unlock()
	if epoch == "" || epoch != seen {
		if err := s.recover(ctx); err != nil {
			return err
		}
		if epoch, all, err = s.snapshot(ctx); err != nil {
			return err
		}
	}
	s.c.touch()
	s.mu.Lock()
	if epoch != "" {
		s.epoch = epoch
	}
	s.mu.Unlock()
	s.replace(all)
	return nil
}

// snapshot reads the marker and the whole hash at one instant.
func (s *Store) snapshot(ctx context.Context) (string, map[string]string, error) {
	var epoch *redis.StringCmd
	var all *redis.MapStringStringCmd
	var n *redis.IntCmd
	_, err := s.c.rdb.TxPipelined(ctx, func(p redisPipe) error {
		epoch = p.Get(ctx, EpochKey)
		n = p.HLen(ctx, StoreKey)
		all = p.HGetAll(ctx, StoreKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", nil, s.c.fail("read the store", err)
	}
	if n.Val() > maxStoreEntries {
		return "", nil, fmt.Errorf("redis at %s holds %d store entries, more than %d; refusing them", s.c.where, n.Val(), maxStoreEntries)
	}
	return epoch.Val(), all.Val(), nil
}

// recover writes the local copy back to Redis, never over an entry Redis
// has, when Redis lost the state: the epoch marker is gone, or is not the
// one this replica saw (another replica marked a Redis that came back
// empty). Then it marks Redis, if need be, and remembers the marker.
func (s *Store) recover(ctx context.Context) error {
	epoch, err := s.c.rdb.Get(ctx, EpochKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return s.c.fail("read the store", err)
	}
	s.mu.Lock()
	lost := s.epoch != "" && epoch != s.epoch
	copyOf := maps.Clone(s.entries)
	s.mu.Unlock()
	if lost && len(copyOf) > 0 {
		_, err := s.c.rdb.TxPipelined(ctx, func(p redisPipe) error {
			for name, sealed := range copyOf {
				p.HSetNX(ctx, StoreKey, name, sealed)
			}
			return nil
		})
		if err != nil {
			return s.c.fail("write the store back", err)
		}
		s.Republished.Add(int64(len(copyOf)))
	}
	return s.ensureEpoch(ctx)
}

// ensureEpoch sets the epoch marker when it is missing and remembers it.
func (s *Store) ensureEpoch(ctx context.Context) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	if err := s.c.rdb.SetNX(ctx, EpochKey, hex.EncodeToString(b), 0).Err(); err != nil {
		return s.c.fail("mark the state", err)
	}
	epoch, err := s.c.rdb.Get(ctx, EpochKey).Result()
	if err != nil {
		return s.c.fail("mark the state", err)
	}
	s.mu.Lock()
	s.epoch = epoch
	s.mu.Unlock()
	return nil
}

// set applies changes (nil: deleted) to the local copy and tells the
// watchers if anything changed.
func (s *Store) set(changes map[string]*string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for name, v := range changes {
		old, had := s.entries[name]
		switch {
		case v == nil && had:
			delete(s.entries, name)
			changed = true
		case v != nil && (!had || old != *v):
			s.entries[name] = *v
			changed = true
		}
	}
	if changed {
		s.notify()
	}
}

// replace makes all the local copy.
func (s *Store) replace(all map[string]string) {
	for name := range all {
		if store.CheckName(name) != nil || strings.ContainsAny(name, " \n") {
			delete(all, name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if maps.Equal(all, s.entries) {
		return
	}
	s.entries = all
	s.notify()
}

// notify tells every watcher; s.mu is held.
func (s *Store) notify() {
	for _, ch := range s.watch {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func ptr[T any](v T) *T { return &v }
