package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"keyhole/rules"
	"keyhole/secret"
)

func TestKind(t *testing.T) {
	ctx := context.Background()
	f := openTest(t, t.TempDir(), "")
	k := Kind{Store: f}
	_, _, err := k.Read(ctx, rules.StoreSource{Name: "A"})
	if !errors.Is(err, rules.ErrGone) || err.Error() != "store:A: not in the store (keyhole secret set A)" {
		t.Fatalf("missing: got %v, want ErrGone with a plain message", err)
	}
	exp := time.Now().Add(time.Hour)
	if err := f.Put(ctx, Entry{Name: "A", Value: secret.FromString(testValue), Expires: exp}); err != nil {
		t.Fatal(err)
	}
	v, gotExp, err := k.Read(ctx, rules.StoreSource{Name: "A"})
	if err != nil || !v.Equal(testValue) || !gotExp.Equal(exp) {
		t.Fatalf("got %v, expiry %v", err, gotExp)
	}
	_, _, err = Kind{Err: errors.New("open store: bad key")}.Read(ctx, rules.StoreSource{Name: "A"})
	if err == nil || !strings.Contains(err.Error(), "store:A: open store: bad key") {
		t.Errorf("no store: got %v", err)
	}
}
