package redisstate

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
	"keyhole/secret"
	"keyhole/store"
)

const storeValue = "sk_live_redis_store_value_0123456789"

// storeKey is the store key every replica of a test shares.
var storeKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, 32))

// replicaStore is one replica's store on Redis, with its own state dir
// holding the shared store key, followed until the test ends.
func replicaStore(t *testing.T, o Options) (*Store, *Client) {
	t.Helper()
	f, err := store.Open(t.TempDir(), storeKey)
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx, nil)
	s, err := OpenStore(ctx, c, f.Sealer())
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx, nil)
	return s, c
}

func has(s *Store, name, value string) bool {
	e, err := s.Get(context.Background(), name)
	return err == nil && e.Value.Reveal() == value
}

// rawHolds reports whether any key or value in Redis holds text.
func rawHolds(t *testing.T, c *Client, text string) bool {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Redis().Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, text) {
			return true
		}
		var vals []string
		switch typ, _ := c.Redis().Type(ctx, k).Result(); typ {
		case "hash":
			m, _ := c.Redis().HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "set":
			vals, _ = c.Redis().SMembers(ctx, k).Result()
		case "string":
			v, _ := c.Redis().Get(ctx, k).Result()
			vals = []string{v}
		}
		for _, v := range vals {
			if strings.Contains(v, text) {
				return true
			}
		}
	}
	return false
}

func TestStoreSharedByReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := Options{URL: srv.URL()}
	a, ca := replicaStore(t, o)
	b, _ := replicaStore(t, o)
	ctx := context.Background()
	changed := b.Watch(ctx)
	if err := a.Put(ctx, store.Entry{Name: "STRIPE", Value: secret.FromString(storeValue)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B serves the entry A stored", 5*time.Second, func() bool { return has(b, "STRIPE", storeValue) })
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("B's Watch was not told of the change")
	}
	if rawHolds(t, ca, storeValue) {
		t.Fatal("Redis holds the value in the clear")
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "STRIPE" || list[0].Fingerprint == "" {
		t.Fatalf("List: %v %+v", err, list)
	}
	if err := b.Delete(ctx, "STRIPE"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A stops serving the entry B deleted", 5*time.Second, func() bool {
		_, err := a.Get(ctx, "STRIPE")
		return errors.Is(err, store.ErrNotFound)
	})
	if err := a.Delete(ctx, "STRIPE"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing entry: %v", err)
	}
	// An entry sealed under another key is refused, not served.
	other, _ := store.Open(t.TempDir(), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	sealed, _ := other.Sealer().SealEntry(store.Entry{Name: "FORGED", Value: secret.FromString("x")})
	ca.Redis().HSet(ctx, StoreKey, "FORGED", sealed)
	ca.Redis().Publish(ctx, StoreChannel, "set:FORGED")
	waitFor(t, "A refuses (not serves, not misses) an entry sealed under another key", 10*time.Second, func() bool {
		_, err := a.Get(ctx, "FORGED")
		return err != nil && !errors.Is(err, store.ErrNotFound)
	})
}

func TestStoreSurvivesFlushAndRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := Options{URL: srv.URL(), Stale: 2 * time.Second}
	a, ca := replicaStore(t, o)
	b, _ := replicaStore(t, o)
	ctx := context.Background()
	if err := a.Put(ctx, store.Entry{Name: "KEPT", Value: secret.FromString(storeValue)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B has the entry", 5*time.Second, func() bool { return has(b, "KEPT", storeValue) })
	if err := ca.Redis().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replicas write the store back after FLUSHALL", 20*time.Second, func() bool {
		n, err := ca.Redis().HLen(ctx, StoreKey).Result()
		return err == nil && n == 1
	})
	srv.Kill()
	if !has(a, "KEPT", storeValue) || !has(b, "KEPT", storeValue) {
		t.Fatal("a replica stopped serving its local copy while Redis is down")
	}
	srv.Restart()
	waitFor(t, "the replicas write the store back to a Redis that came back empty", 30*time.Second, func() bool {
		n, err := ca.Redis().HLen(ctx, StoreKey).Result()
		return err == nil && n == 1
	})
	if a.Republished.Load()+b.Republished.Load() == 0 {
		t.Error("no replica counted a republished entry")
	}
	if err := b.Put(ctx, store.Entry{Name: "AFTER", Value: secret.FromString(storeValue)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A serves an entry stored after the recovery", 10*time.Second, func() bool { return has(a, "AFTER", storeValue) })
}
