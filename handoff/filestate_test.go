package handoff

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestFileStateShared: two FileStates on one state dir (as two keyhole
// processes) racing for the last view of a share: one wins.
func TestFileStateShared(t *testing.T) {
	dir := t.TempDir()
	a, _ := OpenFileState(dir)
	b, _ := OpenFileState(dir)
	now := time.Now()
	sh := Share{ID: NewID(), Secret: "S", To: "alice", Ciphertext: []byte("ct"), Views: 1, ViewsLeft: 1, Created: now, Expires: now.Add(time.Hour)}
	if err := a.PutShare(context.Background(), sh); err != nil {
		t.Fatal(err)
	}
	if err := b.PutShare(context.Background(), sh); err == nil {
		t.Errorf("a second share with the same id was taken")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 40 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Go(func() {
			got, err := st.ClaimShare(context.Background(), sh.ID, now)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && string(got.Ciphertext) == "ct":
				wins++
			case err == nil:
				t.Errorf("a claim returned no ciphertext")
			case !errors.Is(err, ErrGone):
				t.Errorf("got %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("got %d winning claims, want 1", wins)
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("got mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestFileStateBounded: more than MaxLive open shares, or more than
// MaxBytes of their ciphertexts, are refused.
func TestFileStateBounded(t *testing.T) {
	st, _ := OpenFileState(t.TempDir())
	now := time.Now()
	for i := range MaxLive + 1 {
		err := st.PutShare(context.Background(), Share{ID: NewID(), Views: 1, ViewsLeft: 1, Created: now, Expires: now.Add(time.Hour)})
		switch {
		case i < MaxLive && err != nil:
			t.Fatalf("share %d: %v", i, err)
		case i == MaxLive && !errors.Is(err, ErrFull):
			t.Fatalf("share %d: got %v, want ErrFull", i, err)
		}
	}
	big, _ := OpenFileState(t.TempDir())
	big.MaxBytes = 1 << 20
	for i := range 16 + 1 {
		err := big.PutShare(context.Background(), Share{ID: NewID(), Ciphertext: make([]byte, 64<<10), Views: 1, ViewsLeft: 1, Created: now, Expires: now.Add(time.Hour)})
		switch {
		case i < 16 && err != nil:
			t.Fatalf("big share %d: %v", i, err)
		case i == 16 && !errors.Is(err, ErrFull):
			t.Fatalf("big share %d: got %v, want ErrFull", i, err)
		}
	}
}

// BenchmarkFileStateClaim measures a claim (flock, read, rewrite with
// fsync and rename) with records other shares already in the state, each
// holding a 1 KiB ciphertext.
func BenchmarkFileStateClaim(b *testing.B) {
	for _, records := range []int{0, 200} {
		b.Run(strconv.Itoa(records), func(b *testing.B) {
			st, _ := OpenFileState(b.TempDir())
			now := time.Now()
			for range records {
				if err := st.PutShare(context.Background(), Share{ID: NewID(), Ciphertext: make([]byte, 1024), Views: 1, ViewsLeft: 1, Created: now, Expires: now.Add(time.Hour)}); err != nil {
					b.Fatal(err)
				}
			}
			id := NewID()
			if err := st.PutShare(context.Background(), Share{ID: id, Ciphertext: make([]byte, 1024), Views: MaxViews, ViewsLeft: MaxViews, Created: now, Expires: now.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := st.ClaimShare(context.Background(), id, now); err != nil {
					b.StopTimer()
					_ = st.RevokeShare(context.Background(), id)
					id = NewID()
					_ = st.PutShare(context.Background(), Share{ID: id, Ciphertext: make([]byte, 1024), Views: MaxViews, ViewsLeft: MaxViews, Created: now, Expires: now.Add(time.Hour)})
					b.StartTimer()
				}
			}
		})
	}
}
