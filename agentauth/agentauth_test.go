package agentauth

import (
	"errors"
	"testing"
	"time"

	"keyhole/rules"
	"keyhole/tokens"
)

func TestVerify(t *testing.T) {
	t.Setenv("A_TOKEN", "static-token-of-a")
	set, err := rules.LoadData("x.yaml", []byte("agents:\n  a: {token: env:A_TOKEN}\n  b: {token: env:A_TOKEN}\n"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	minted, err := tokens.Mint(key, "a", "task1", tokens.Restriction{TTL: time.Minute}, now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := tokens.GenerateKey()
	forged, _ := tokens.Mint(other, "a", "task2", tokens.Restriction{TTL: time.Minute}, now)
	v := &Verifier{Key: key}
	tests := []struct {
		name, user, pass string
		at               time.Time
		want             error
	}{
		{"static", "a", "static-token-of-a", now, nil},
		{"wrong static", "a", "nope", now, ErrBadCredentials},
		{"unknown agent", "zz", "static-token-of-a", now, ErrBadCredentials},
		{"minted", "a", minted, now, nil},
		{"minted for another agent", "b", minted, now, ErrBadCredentials},
		{"minted, expired", "a", minted, now.Add(2 * time.Minute), ErrExpired},
		{"wrong key", "a", forged, now, ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(set, tc.user, tc.pass, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && id.Agent.Name != tc.user {
				t.Errorf("agent: got %s, want %s", id.Agent.Name, tc.user)
			}
		})
	}
	if _, err := (*Verifier)(nil).Verify(set, "a", minted, now); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("nil verifier, minted token: got %v, want %v", err, ErrBadCredentials)
	}
}

// fakeShared is a shared revocation list whose staleness the test sets.
type fakeShared struct {
	ids   map[string]bool
	stale bool
}

func (f *fakeShared) Has(id string) bool { return f.ids[id] }
func (f *fakeShared) Stale() bool        { return f.stale }

func TestSharedRevocations(t *testing.T) {
	t.Setenv("A_TOKEN", "static-token-of-a")
	set, err := rules.LoadData("x.yaml", []byte("agents:\n  a: {token: env:A_TOKEN}\n"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	minted, _ := tokens.Mint(key, "a", "task1", tokens.Restriction{TTL: time.Minute}, now)
	revokedElsewhere, _ := tokens.Mint(key, "a", "task2", tokens.Restriction{TTL: time.Minute}, now)
	file, err := tokens.OpenRevocations(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shared := &fakeShared{ids: map[string]bool{"task2": true}}
	file.Share(shared)
	v := &Verifier{Key: key, Revoked: file}
	tests := []struct {
		name, pass string
		stale      bool
		want       error
	}{
		{"minted", minted, false, nil},
		{"revoked on another replica", revokedElsewhere, false, ErrRevoked},
		{"minted while the shared state is stale", minted, true, ErrStateUnavailable},
		{"revoked, stale: still revoked", revokedElsewhere, true, ErrRevoked},
		{"static while stale", "static-token-of-a", true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shared.stale = tc.stale
			if _, err := v.Verify(set, "a", tc.pass, now); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
