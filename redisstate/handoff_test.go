package redisstate

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/handoff"
	"keyhole/redisstate/redistest"
	"keyhole/store"
)

// replicaHandoffs are n replicas' hand-off states over one Redis, each
// with its own connection and state dir holding the shared store key.
func replicaHandoffs(t *testing.T, srv *redistest.Server, n int) ([]*Handoff, *Client) {
	t.Helper()
	var hs []*Handoff
	var c *Client
	for range n {
		f, err := store.Open(t.TempDir(), storeKey)
		if err != nil {
			t.Fatal(err)
		}
		c = open(t, Options{URL: srv.URL()})
		hs = append(hs, NewHandoff(c, f.Sealer()))
	}
	return hs, c
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestHandoffRacingReveals(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hs, raw := replicaHandoffs(t, srv, 3)
	ctx := context.Background()
	now := time.Now()
	for _, views := range []int{1, 3} {
		ct := randomBytes(64)
		id := "share-" + string(rune('0'+views))
		s := handoff.Share{ID: id, Secret: "STRIPE", To: "alice", Ciphertext: ct, KeyCheck: []byte("kc"),
			Views: views, ViewsLeft: views, Created: now, Expires: now.Add(time.Hour)}
		if err := hs[0].PutShare(ctx, s); err != nil {
			t.Fatal(err)
		}
		if err := hs[1].PutShare(ctx, s); err == nil {
			t.Fatal("a second PutShare of the same id succeeded")
		}
		got, err := hs[2].GetShare(ctx, id)
		if err != nil || got.Status != handoff.StatusReady || !bytes.Equal(got.Ciphertext, ct) || got.ViewsLeft != views {
			t.Fatalf("GetShare on another replica: %v status %s views %d", err, got.Status, got.ViewsLeft)
		}
		var wins, gone atomic.Int64
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				s, err := hs[i%3].ClaimShare(ctx, id, time.Now())
				switch {
				case err == nil && bytes.Equal(s.Ciphertext, ct):
					wins.Add(1)
				case errors.Is(err, handoff.ErrGone):
					gone.Add(1)
				default:
					t.Errorf("claim: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != int64(views) || gone.Load() != int64(100-views) {
			t.Fatalf("%d views: %d reveals succeeded and %d were gone, want %d and %d", views, wins.Load(), gone.Load(), views, 100-views)
		}
		after, err := hs[1].GetShare(ctx, id)
		if err != nil || after.Status != handoff.StatusViewed || after.Ciphertext != nil || after.ViewsLeft != 0 {
			t.Fatalf("after the views: %v status %s", err, after.Status)
		}
		if holdsBytes(t, raw, ct) {
			t.Fatal("Redis holds the share's ciphertext unsealed")
		}
	}
	if _, err := hs[0].ClaimShare(ctx, "nope", now); !errors.Is(err, handoff.ErrNotFound) {
		t.Fatalf("claim of an unknown share: %v", err)
	}
}

func TestHandoffExpiryRevokeAndIntakes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hs, raw := replicaHandoffs(t, srv, 3)
	ctx := context.Background()
	now := time.Now()
	short := handoff.Share{ID: "short", Ciphertext: randomBytes(32), Views: 1, ViewsLeft: 1, Created: now, Expires: now.Add(time.Minute)}
	revoked := handoff.Share{ID: "revoked", Ciphertext: randomBytes(32), Views: 1, ViewsLeft: 1, Created: now.Add(time.Second), Expires: now.Add(time.Hour)}
	for _, s := range []handoff.Share{short, revoked} {
		if err := hs[0].PutShare(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := hs[1].RevokeShare(ctx, "revoked"); err != nil {
		t.Fatal(err)
	}
	if _, err := hs[2].ClaimShare(ctx, "revoked", now); !errors.Is(err, handoff.ErrGone) {
		t.Fatalf("claim of a revoked share: %v", err)
	}
	later := now.Add(2 * time.Minute)
	shares, _, err := hs[2].Sweep(ctx, later)
	if err != nil || len(shares) != 1 || shares[0] != "short" {
		t.Fatalf("Sweep: %v %v", shares, err)
	}
	var gone *handoff.GoneError
	if s, err := hs[0].ClaimShare(ctx, "short", later); !errors.As(err, &gone) || gone.Status != handoff.StatusExpired || s.Status != handoff.StatusExpired {
		t.Fatalf("claim of an expired share: %v %s", err, s.Status)
	}
	list, err := hs[1].ListShares(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "short" || list[1].Status != handoff.StatusRevoked || list[0].Ciphertext != nil {
		t.Fatalf("ListShares: %v %+v", err, list)
	}

	pk := randomBytes(32)
	in := handoff.Intake{ID: "intake-1", Agent: "ci", Name: "NEW", Hosts: []string{"api.example.com"}, PrivateKey: pk,
		PublicKey: []byte("pub"), CapabilityHash: []byte("h"), Created: now, Expires: now.Add(time.Hour)}
	if err := hs[0].PutIntake(ctx, in); err != nil {
		t.Fatal(err)
	}
	if holdsBytes(t, raw, pk) {
		t.Fatal("Redis holds the intake's private key unsealed")
	}
	got, err := hs[1].GetIntake(ctx, "intake-1")
	if err != nil || got.Status != handoff.StatusPending || !bytes.Equal(got.PrivateKey, pk) {
		t.Fatalf("GetIntake: %v %s", err, got.Status)
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			st := handoff.StatusFulfilled
			if i%2 == 1 {
				st = handoff.StatusDeclined
			}
			before, err := hs[i%3].FinishIntake(ctx, "intake-1", st, []string{"api.example.com"}, time.Now())
			if err == nil {
				if !bytes.Equal(before.PrivateKey, pk) || before.Status != handoff.StatusPending {
					t.Error("the winner did not get the intake as it was")
				}
				wins.Add(1)
			} else if !errors.Is(err, handoff.ErrGone) {
				t.Errorf("finish: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d answers won, want 1", wins.Load())
	}
	done, err := hs[2].GetIntake(ctx, "intake-1")
	if err != nil || done.PrivateKey != nil || (done.Status != handoff.StatusFulfilled && done.Status != handoff.StatusDeclined) {
		t.Fatalf("after the answer: %v %s", err, done.Status)
	}
	if done.Status == handoff.StatusFulfilled && (len(done.GrantedHosts) != 1 || done.GrantedHosts[0] != "api.example.com") {
		t.Fatalf("granted hosts: %v", done.GrantedHosts)
	}
	// Redis forgets a record a day after it expired.
	ttl, err := raw.Redis().PTTL(ctx, "keyhole:intake:intake-1").Result()
	if err != nil || ttl < handoff.Forget || ttl > handoff.Forget+time.Hour+time.Minute {
		t.Fatalf("the record's TTL is %v (%v)", ttl, err)
	}
}

// holdsBytes reports whether any value in Redis holds b.
func holdsBytes(t *testing.T, c *Client, b []byte) bool {
	t.Helper()
	return rawHolds(t, c, string(b))
}

func TestHandoffBounds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	hs, _ := replicaHandoffs(t, srv, 2)
	ctx := context.Background()
	now := time.Now()
	put := func(h *Handoff, i int, expires time.Time) error {
		return h.PutShare(ctx, handoff.Share{ID: fmt.Sprintf("s%d", i), Ciphertext: []byte("c"), Views: 1, ViewsLeft: 1, Created: now, Expires: expires})
	}
	if err := put(hs[0], -1, now.Add(-time.Second)); err != nil { // expired: not live
		t.Fatal(err)
	}
	for i := range handoff.MaxLive {
		if err := put(hs[i%2], i, now.Add(time.Hour)); err != nil {
			t.Fatalf("share %d: %v", i, err)
		}
	}
	if err := put(hs[1], handoff.MaxLive, now.Add(time.Hour)); !errors.Is(err, handoff.ErrFull) {
		t.Fatalf("one share more than MaxLive across replicas: %v, want ErrFull", err)
	}
	if _, err := hs[0].ClaimShare(ctx, "s0", now); err != nil {
		t.Fatal(err)
	}
	if err := put(hs[1], handoff.MaxLive, now.Add(time.Hour)); err != nil {
		t.Fatalf("after a share was viewed: %v", err)
	}
}
