package tokens

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRevoke(t *testing.T) {
	key := testKey(1)
	parent := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, parent, "child-1", Restriction{Secrets: []string{"STRIPE_LIVE"}})
	grandchild := mustAttenuate(t, child, "grandchild-1", Restriction{Methods: []string{"GET"}})
	sibling := mustAttenuate(t, parent, "sibling-1", Restriction{})
	cases := []struct {
		name   string
		revoke []string
		wantID string   // the id the last Revoke returns
		want   []string // revoked tokens, by id; the others must not be
	}{
		{name: "nothing"},
		{name: "parent by id", revoke: []string{"task-1"}, wantID: "task-1", want: []string{"task-1", "child-1", "grandchild-1", "sibling-1"}},
		{name: "parent by token", revoke: []string{parent}, wantID: "task-1", want: []string{"task-1", "child-1", "grandchild-1", "sibling-1"}},
		{name: "child by token", revoke: []string{child}, wantID: "child-1", want: []string{"child-1", "grandchild-1"}},
		{name: "child by id", revoke: []string{"child-1"}, wantID: "child-1", want: []string{"child-1", "grandchild-1"}},
		{name: "grandchild", revoke: []string{grandchild}, wantID: "grandchild-1", want: []string{"grandchild-1"}},
		{name: "twice", revoke: []string{"sibling-1", sibling}, wantID: "sibling-1", want: []string{"sibling-1"}},
		{name: "unknown id", revoke: []string{"someone-else"}, wantID: "someone-else"},
	}
	all := map[string]string{"task-1": parent, "child-1": child, "grandchild-1": grandchild, "sibling-1": sibling}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var id string
			for _, s := range tc.revoke {
				var err error
				if id, err = Revoke(dir, s, now); err != nil {
					t.Fatalf("Revoke: %v", err)
				}
			}
			if id != tc.wantID {
				t.Errorf("got revoked id %q, want %q", id, tc.wantID)
			}
			revs, err := OpenRevocations(dir)
			if err != nil {
				t.Fatalf("OpenRevocations: %v", err)
			}
			for name, tok := range all {
				g, err := Verify(key, tok, now)
				if err != nil {
					t.Fatal(err)
				}
				want := strings.Contains(" "+strings.Join(tc.want, " ")+" ", " "+name+" ")
				if got := revs.Revoked(g); got != want {
					t.Errorf("token %s: got revoked %v, want %v", name, got, want)
				}
			}
			if len(tc.revoke) > 0 {
				// Every case revokes one id, some of them twice.
				data, err := os.ReadFile(filepath.Join(dir, RevokedFile))
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Count(string(data), "\n"); got != 1 {
					t.Errorf("got %d lines in the list, want 1", got)
				}
			}
		})
	}
}

func TestRevokeErrors(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: "1 to 64"},
		{name: "bad id", in: "a/b", want: "not allowed"},
		{name: "newline", in: "a\nb", want: "not allowed"},
		{name: "malformed token", in: Prefix + "AAAA", want: "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Revoke(dir, tc.in, now); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, RevokedFile)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("got %v, want no revocation list", err)
			}
		})
	}
}

func TestRevokedFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Revoke(dir, "abc", now); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, RevokedFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %04o, want 0600", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(data), "abc 2026-11-26T10:30:00Z\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestOpenRevocations(t *testing.T) {
	g := &Grant{IDs: []string{"root", "kid"}}
	cases := []struct {
		name    string
		content string // "": no file
		mode    os.FileMode
		want    bool   // g revoked
		wantErr string // in the error
	}{
		{name: "no list"},
		{name: "ids only", content: "x\nkid\n", mode: 0o600, want: true},
		{name: "with times", content: "root 2026-11-26T10:30:00Z\n", mode: 0o600, want: true},
		{name: "comments and blanks", content: "# kid\n\n  \nother\n", mode: 0o600},
		{name: "unterminated last line", content: "other\nroot", mode: 0o600},
		{name: "readable by others is fine", content: "root\n", mode: 0o644, want: true},
		{name: "writable by group", content: "root\n", mode: 0o620, wantErr: "chmod 600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != "" {
				path := filepath.Join(dir, RevokedFile)
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			revs, err := OpenRevocations(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenRevocations: %v", err)
			}
			if got := revs.Revoked(g); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNilRevocations(t *testing.T) {
	var r *Revocations
	if r.Revoked(&Grant{IDs: []string{"a"}}) {
		t.Fatal("got revoked from a nil list, want not")
	}
}

func TestWatch(t *testing.T) {
	key := testKey(1)
	dir := t.TempDir()
	parent := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, parent, "child-1", Restriction{})
	g, err := Verify(key, child, now)
	if err != nil {
		t.Fatal(err)
	}
	revs, err := OpenRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var watchErrs []error
	wg.Go(func() {
		revs.Watch(ctx, 0, func(err error) {
			errMu.Lock()
			defer errMu.Unlock()
			watchErrs = append(watchErrs, err)
		})
	})
	defer func() {
		cancel()
		wg.Wait()
		errMu.Lock()
		defer errMu.Unlock()
		if len(watchErrs) > 0 {
			t.Errorf("got watch errors %v, want none", watchErrs)
		}
	}()

	// waitFor reports how long it took until Revoked(g) was want.
	waitFor := func(want bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < time.Second {
			if revs.Revoked(g) == want {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("after 1s: got revoked %v, want %v", !want, want)
		return 0
	}
	if _, err := Revoke(dir, "unrelated", now); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if revs.Revoked(g) {
		t.Fatal("got revoked after an unrelated revocation, want not")
	}
	if _, err := Revoke(dir, "task-1", now); err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation of the parent seen after %v", waitFor(true))
	if err := os.Remove(filepath.Join(dir, RevokedFile)); err != nil {
		t.Fatal(err)
	}
	t.Logf("removal of the list seen after %v", waitFor(false))
}
