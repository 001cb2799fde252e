package credential

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCacheOneFetch: 200 concurrent requests on a cold cache share one fetch.
func TestCacheOneFetch(t *testing.T) {
	c := NewCache[string, string](0)
	var fetches atomic.Int32
	release := make(chan struct{})
	fetch := func(context.Context) (string, time.Time, error) {
		fetches.Add(1)
		<-release
		return "tok", time.Now().Add(time.Hour), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			v, err := c.Get(context.Background(), "k", fetch)
			if err == nil && v != "tok" {
				err = errors.New("wrong value")
			}
			errs <- err
		})
	}
	// Let the goroutines pile up behind the first fetch.
	deadline := time.Now().Add(30 * time.Second)
	for fetches.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A goroutine that arrived after the first fetch ended finds the value
	// cached; none fetches again.
	if n := fetches.Load(); n != 1 {
		t.Errorf("got %d fetches, want 1", n)
	}
}

func TestCacheRefresh(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewCache[string, int](0)
	c.Now = func() time.Time { return now }
	n := 0
	fetch := func(context.Context) (int, time.Time, error) {
		n++
		return n, now.Add(time.Minute), nil
	}
	get := func() int {
		v, err := c.Get(context.Background(), "k", fetch)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(); v != 1 {
		t.Fatalf("got %d, want 1", v)
	}
	now = now.Add(59 * time.Second)
	if v := get(); v != 1 {
		t.Fatalf("before refresh: got %d, want the cached 1", v)
	}
	now = now.Add(time.Second)
	if v := get(); v != 2 {
		t.Fatalf("at refresh: got %d, want a fresh 2", v)
	}
}

func TestCacheFailureNotCached(t *testing.T) {
	c := NewCache[string, int](0)
	fail := true
	fetch := func(context.Context) (int, time.Time, error) {
		if fail {
			return 0, time.Time{}, Stepf("token endpoint", "returned 500")
		}
		return 7, time.Now().Add(time.Hour), nil
	}
	if _, err := c.Get(context.Background(), "k", fetch); err == nil || err.Error() != "token endpoint returned 500" {
		t.Fatalf("got %v, want the step error", err)
	}
	fail = false
	if v, err := c.Get(context.Background(), "k", fetch); err != nil || v != 7 {
		t.Fatalf("got %d, %v; want 7 after the endpoint recovered", v, err)
	}
}

// TestCacheCallerGivesUp: a caller whose context ends stops waiting, and
// the fetch it started still fills the cache for the next.
func TestCacheCallerGivesUp(t *testing.T) {
	c := NewCache[string, int](0)
	release := make(chan struct{})
	done := make(chan struct{})
	fetch := func(ctx context.Context) (int, time.Time, error) {
		defer close(done)
		select {
		case <-release:
		case <-ctx.Done():
			return 0, time.Time{}, ctx.Err()
		}
		return 3, time.Now().Add(time.Hour), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Get(ctx, "k", fetch); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	close(release)
	<-done
	deadline := time.Now().Add(30 * time.Second)
	for c.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	v, err := c.Get(context.Background(), "k", func(context.Context) (int, time.Time, error) {
		return 0, time.Time{}, errors.New("fetched twice")
	})
	if err != nil || v != 3 {
		t.Fatalf("got %d, %v; want the cached 3", v, err)
	}
}

func TestCacheBounded(t *testing.T) {
	c := NewCache[string, int](2)
	for i, k := range []string{"a", "b", "c"} {
		_, _ = c.Get(context.Background(), k, func(context.Context) (int, time.Time, error) {
			return i, time.Now().Add(time.Hour), nil
		})
	}
	if c.Len() != 2 {
		t.Errorf("got %d entries, want 2", c.Len())
	}
}
