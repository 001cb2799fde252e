package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"keyhole/credential"
	"keyhole/handoff"
	"keyhole/metrics"
	"keyhole/redisstate"
	"keyhole/rules"
	"keyhole/store"
	"keyhole/tokens"
)

// openShared connects to the Redis that replicas share, when
// KEYHOLE_REDIS_URL is set (nil, nil when it is not), and keeps its health
// current until ctx ends.
func openShared(ctx context.Context, s settings, log *slog.Logger, m *metrics.Metrics) (*redisstate.Client, error) {
	if s.Redis.URL == "" {
		return nil, nil
	}
	redisstate.SetLog(log)
	c, err := redisstate.Open(ctx, s.Redis)
	if err != nil {
		return nil, err
	}
	go c.Run(ctx, func(healthy bool, err error) {
		if healthy {
			log.Info("shared state: redis answers again; resyncing", "redis", c.Where())
		} else {
			log.Error("shared state: redis does not answer; serving from local copies", "redis", c.Where(), "stale_after", c.StaleAfter().String(), "error", err)
		}
	})
	m.Gauge("keyhole_redis_healthy", "1 while the shared Redis answers, else 0.", func() float64 { return boolGauge(c.Healthy()) })
	m.Gauge("keyhole_redis_stale", "1 while the shared Redis has not answered for longer than KEYHOLE_REDIS_STALE, else 0.", func() float64 { return boolGauge(c.Stale()) })
	log.Info("shared state in redis", "redis", c.Where())
	return c, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// shareRevocations puts the shared revocations in force next to the
// revocation file and follows them until ctx ends; nothing without shared
// state.
func shareRevocations(ctx context.Context, c *redisstate.Client, file *tokens.Revocations, log *slog.Logger, m *metrics.Metrics) error {
	if c == nil {
		return nil
	}
	r := redisstate.NewRevocations(c, file)
	if err := r.Resync(ctx); err != nil {
		return err
	}
	file.Share(r)
	go r.Run(ctx, func(err error) {
		log.Error("shared revocations not resynced; the local copy stays in force", "error", err)
	})
	m.Gauge("keyhole_redis_revoked_ids", "Revoked token ids in this replica's copy of the shared revocations.", func() float64 { return float64(r.Len()) })
	m.Counter("keyhole_redis_revocations_republished_total", "Revoked ids this replica wrote back to Redis because Redis had lost them.", func() float64 { return float64(r.Republished.Load()) })
	return nil
}

// revokeShared tells the other replicas of a revocation, when the state is
// shared.
func revokeShared(s settings, id string) error {
	if s.Redis.URL == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := redisstate.Open(ctx, s.Redis)
	if err != nil {
		return err
	}
	defer c.Close()
	return redisstate.Revoke(ctx, c, id)
}

// shareStore returns the store serve reads: with shared state the store in
// Redis (sealed with file's store key), put in loader's place of the file
// and followed until ctx ends; else file. It is nil when there is neither.
func shareStore(ctx context.Context, c *redisstate.Client, file *store.File, loader *rules.Loader, log *slog.Logger, m *metrics.Metrics) (store.Store, error) {
	if c == nil || file == nil {
		if file == nil {
			return nil, nil
		}
		return file, nil
	}
	st, err := redisstate.OpenStore(ctx, c, file.Sealer())
	if err != nil {
		return nil, err
	}
	loader.Kinds["store"] = store.Kind{Store: st}
	go st.Run(ctx, func(err error) { log.Error("shared store not resynced; the local copy stays in force", "error", err) })
	m.Counter("keyhole_redis_store_republished_total", "Store entries this replica wrote back to Redis because Redis had lost them.", func() float64 { return float64(st.Republished.Load()) })
	return st, nil
}

// commandLoaderStore makes a command's loader (keyhole check, env, share)
// read store: sources from Redis when the state is shared, and returns the
// store it reads (nil when file is nil: the store could not be opened);
// done ends the connection.
func commandLoaderStore(ctx context.Context, s settings, loader *rules.Loader, file *store.File) (st store.Store, done func(), err error) {
	if file == nil {
		return nil, func() {}, nil
	}
	if s.Redis.URL == "" {
		return file, func() {}, nil
	}
	st, done, err = commandStore(ctx, s, file)
	if err != nil {
		return nil, nil, err
	}
	loader.Kinds["store"] = store.Kind{Store: st}
	return st, done, nil
}

// commandStore is the store a command (keyhole secret) works on: the one
// in Redis with shared state, else file. close ends the connection.
func commandStore(ctx context.Context, s settings, file *store.File) (st store.Store, close func(), err error) {
	if s.Redis.URL == "" {
		return file, func() {}, nil
	}
	c, err := redisstate.Open(ctx, s.Redis)
	if err != nil {
		return nil, nil, err
	}
	rs, err := redisstate.OpenStore(ctx, c, file.Sealer())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return rs, func() { c.Close() }, nil
}

// sharedCredentials shares minted credentials between replicas, sealed
// with file's store key; nil without shared state.
func sharedCredentials(c *redisstate.Client, file *store.File) credential.Shared {
	if c == nil || file == nil {
		return nil
	}
	return redisstate.NewCredentials(c, file.Sealer())
}

// sharedHandoff is the hand-off State in Redis, sealed with file's store
// key; nil (the file State) without shared state.
func sharedHandoff(c *redisstate.Client, file *store.File) handoff.State {
	if c == nil || file == nil {
		return nil
	}
	return redisstate.NewHandoff(c, file.Sealer())
}

// commandHandoffState is the hand-off State a command (keyhole share)
// works on: in Redis with shared state, else the file in the state dir.
// close ends the connection.
func commandHandoffState(ctx context.Context, s settings) (st handoff.State, close func(), err error) {
	if s.Redis.URL == "" {
		fs, err := handoff.OpenFileState(s.StateDir)
		return fs, func() {}, err
	}
	file, err := store.Open(s.StateDir, os.Getenv(store.KeyEnv))
	if err != nil {
		return nil, nil, err
	}
	c, err := redisstate.Open(ctx, s.Redis)
	if err != nil {
		return nil, nil, err
	}
	return redisstate.NewHandoff(c, file.Sealer()), func() { c.Close() }, nil
}
