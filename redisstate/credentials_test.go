package redisstate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/credential"
	"keyhole/redisstate/redistest"
	"keyhole/store"
)

const mintedValue = "ya29.minted-redis-TEST-0123456789"

// replicaCaches are n replicas' credential caches sharing through Redis.
func replicaCaches(t *testing.T, srv *redistest.Server, n int) ([]*credential.Cache[string, string], []*Credentials) {
	t.Helper()
	var caches []*credential.Cache[string, string]
	var shared []*Credentials
	for range n {
		f, err := store.Open(t.TempDir(), storeKey)
		if err != nil {
			t.Fatal(err)
		}
		s := NewCredentials(open(t, Options{URL: srv.URL()}), f.Sealer())
		c := credential.NewCache[string, string](0)
		c.Timeout = 5 * time.Second
		c.Shared = credential.SharedCodec[string, string]{
			Shared: s,
			Key:    func(k string) string { return k },
			Encode: func(v string) ([]byte, error) { return []byte(v), nil },
			Decode: func(_ string, b []byte) (string, error) { return string(b), nil },
		}
		caches, shared = append(caches, c), append(shared, s)
	}
	return caches, shared
}

func TestMintedOnceAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	caches, shared := replicaCaches(t, srv, 3)
	var mints atomic.Int64
	fetch := func(ctx context.Context) (string, time.Time, error) {
		mints.Add(1)
		time.Sleep(200 * time.Millisecond) // a slow token endpoint
		return mintedValue, time.Now().Add(time.Hour), nil
	}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			v, err := caches[i%3].Get(context.Background(), "oauth2:API", fetch)
			if err != nil || v != mintedValue {
				t.Errorf("Get: %v", err)
			}
		})
	}
	wg.Wait()
	if n := mints.Load(); n != 1 {
		t.Fatalf("the token was minted %d times by 3 replicas, want once", n)
	}
	if rawHolds(t, shared[0].c, mintedValue) {
		t.Fatal("Redis holds the minted token in the clear")
	}
}

func TestMintLockExpires(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	caches, shared := replicaCaches(t, srv, 2)
	// A replica took the lock and died without releasing it.
	if _, held, err := shared[1].Lock(context.Background(), "oauth2:DEAD", time.Second); err != nil || !held {
		t.Fatalf("Lock: %v %v", held, err)
	}
	if _, held, _ := shared[0].Lock(context.Background(), "oauth2:DEAD", time.Second); held {
		t.Fatal("a held lock was taken twice")
	}
	var mints atomic.Int64
	start := time.Now()
	v, err := caches[0].Get(context.Background(), "oauth2:DEAD", func(context.Context) (string, time.Time, error) {
		mints.Add(1)
		return mintedValue, time.Now().Add(time.Hour), nil
	})
	if err != nil || v != mintedValue || mints.Load() != 1 {
		t.Fatalf("Get after a dead holder: %v, %d mints", err, mints.Load())
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("minted after %v, before the dead holder's lock expired", took)
	}
	// Redis down: the replica mints by itself.
	srv.Kill()
	v, err = caches[1].Get(context.Background(), "oauth2:ALONE", func(context.Context) (string, time.Time, error) {
		return mintedValue, time.Now().Add(time.Hour), nil
	})
	if err != nil || v != mintedValue {
		t.Fatalf("Get with Redis down: %v", err)
	}
}
