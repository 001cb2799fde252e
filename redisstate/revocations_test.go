package redisstate

import (
	"context"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
	"keyhole/tokens"
)

// replicaRevocations is one replica's revocation file with the shared list
// in force, followed until the test ends.
func replicaRevocations(t *testing.T, o Options) (*tokens.Revocations, *Revocations, *Client) {
	t.Helper()
	dir := t.TempDir()
	file, err := tokens.OpenRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go c.Run(ctx, nil)
	r := NewRevocations(c, file)
	if err := r.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	file.Share(r)
	go r.Run(ctx, nil)
	return file, r, c
}

func TestRevocationsReachEveryReplica(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := Options{URL: srv.URL()}
	a, _, ca := replicaRevocations(t, o)
	b, _, _ := replicaRevocations(t, o)
	c, _, _ := replicaRevocations(t, o)
	child := &tokens.Grant{IDs: []string{"task-1", "task-1.sub"}}
	if a.Revoked(child) || b.Revoked(child) || c.Revoked(child) {
		t.Fatal("revoked before any revocation")
	}
	start := time.Now()
	if err := Revoke(context.Background(), ca, "task-1"); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*tokens.Revocations{"A": a, "B": b, "C": c} {
		waitFor(t, "replica "+name+" honours the revocation of a parent", 5*time.Second, func() bool { return r.Revoked(child) })
	}
	t.Logf("every replica honoured the revocation after %s", time.Since(start))
	if err := Revoke(context.Background(), ca, "bad id!"); err == nil {
		t.Error("Revoke took an invalid id")
	}
}

func TestRevocationsSurviveFlushAndRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	o := Options{URL: srv.URL(), Stale: 2 * time.Second}
	dir := t.TempDir()
	if _, err := tokens.Revoke(dir, "from-the-file", time.Now()); err != nil {
		t.Fatal(err)
	}
	fileA, err := tokens.OpenRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca := open(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ca.Run(ctx, nil)
	ra := NewRevocations(ca, fileA)
	if err := ra.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	fileA.Share(ra)
	go ra.Run(ctx, nil)
	b, _, cb := replicaRevocations(t, o)
	fromFile := &tokens.Grant{IDs: []string{"from-the-file"}}
	waitFor(t, "B honours A's file revocation", 10*time.Second, func() bool { return b.Revoked(fromFile) })
	if err := Revoke(ctx, cb, "shared-1"); err != nil {
		t.Fatal(err)
	}
	shared := &tokens.Grant{IDs: []string{"shared-1"}}
	waitFor(t, "A honours B's revocation", 10*time.Second, func() bool { return fileA.Revoked(shared) })

	if err := cb.Redis().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replicas write the lost ids back after FLUSHALL", 20*time.Second, func() bool {
		ids, err := cb.Redis().SMembers(ctx, RevokedKey).Result()
		return err == nil && contains(ids, "from-the-file") && contains(ids, "shared-1")
	})

	srv.Kill()
	waitFor(t, "A reports the revocations unavailable once Redis is stale", 20*time.Second, fileA.Unavailable)
	if !fileA.Revoked(shared) {
		t.Fatal("the local copy lost a revocation while Redis was down")
	}
	srv.Restart() // empty
	waitFor(t, "A is available again", 20*time.Second, func() bool { return !fileA.Unavailable() && !b.Unavailable() })
	waitFor(t, "the replicas write the ids back to a Redis that came back empty", 20*time.Second, func() bool {
		ids, err := cb.Redis().SMembers(ctx, RevokedKey).Result()
		return err == nil && contains(ids, "from-the-file") && contains(ids, "shared-1")
	})
	if ra.Republished.Load() == 0 {
		t.Error("A counted no republished id")
	}
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
