package tokens

import (
	"fmt"
	"testing"
	"time"
)

// sharedSet is a SharedList for tests.
type sharedSet struct {
	ids   map[string]struct{}
	stale bool
}

func (s *sharedSet) Has(id string) bool { _, ok := s.ids[id]; return ok }
func (s *sharedSet) Stale() bool        { return s.stale }

func TestSharedRevocations(t *testing.T) {
	dir := t.TempDir()
	if _, err := Revoke(dir, "local", time.Now()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRevocations(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Unavailable() || (*Revocations)(nil).Unavailable() {
		t.Fatal("unavailable without a shared list")
	}
	s := &sharedSet{ids: map[string]struct{}{"remote": {}}}
	r.Share(s)
	for _, tc := range []struct {
		ids  []string
		want bool
	}{
		{[]string{"local"}, true},
		{[]string{"remote", "remote.child"}, true},
		{[]string{"other"}, false},
	} {
		if got := r.Revoked(&Grant{IDs: tc.ids}); got != tc.want {
			t.Errorf("Revoked(%v) = %v, want %v", tc.ids, got, tc.want)
		}
	}
	s.stale = true
	if !r.Unavailable() {
		t.Error("a stale shared list is not unavailable")
	}
	if ids := r.IDs(); len(ids) != 1 || ids[0] != "local" {
		t.Errorf("IDs: %v", ids)
	}
}

// BenchmarkRevoked is the request path's revocation check, with the file's
// list only and with a shared list too, for a token of a chain of two ids
// against 10,000 revoked ids.
func BenchmarkRevoked(b *testing.B) {
	dir := b.TempDir()
	for i := range 100 {
		if _, err := Revoke(dir, fmt.Sprintf("file-%d", i), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	g := &Grant{IDs: []string{"task-1", "task-1.sub"}}
	for _, shared := range []bool{false, true} {
		r, err := OpenRevocations(dir)
		if err != nil {
			b.Fatal(err)
		}
		if shared {
			s := &sharedSet{ids: map[string]struct{}{}}
			for i := range 10_000 {
				s.ids[fmt.Sprintf("shared-%d", i)] = struct{}{}
			}
			r.Share(s)
		}
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			for b.Loop() {
				if r.Revoked(g) || r.Unavailable() {
					b.Fatal("revoked")
				}
			}
		})
	}
}
