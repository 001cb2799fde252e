package tokens

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMintedList(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	key := testKey(1)
	root := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, root, "child-1", Restriction{TTL: time.Minute})
	for _, tok := range []string{root, child} {
		if err := RecordMinted(dir, tok); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, MintedFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("got mode %04o, want 0600", perm)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), root) || strings.Contains(string(data), Prefix) {
		t.Error("the minted list holds a token")
	}
	// A foreign, overlong line does not hide the entries after it.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(strings.Repeat("x", 3*maxMintedLine) + "\nbad line\nlate-1 ci 2026-11-26T11:00:00Z late-1\npartial")
	f.Close()
	tests := []struct {
		id      string
		ok      bool
		agent   string
		expires time.Time
		ids     []string
	}{
		{"task-1", true, "billing", now.Add(15 * time.Minute), []string{"task-1"}},
		{"child-1", true, "billing", now.Add(time.Minute), []string{"task-1", "child-1"}},
		{"late-1", true, "ci", now.Add(30 * time.Minute), []string{"late-1"}},
		{"task-2", false, "", time.Time{}, nil},
		{"partial", false, "", time.Time{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			m, ok, err := LookupMinted(dir, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || m.Agent != tc.agent || !m.Expires.Equal(tc.expires) || !slices.Equal(m.IDs, tc.ids) {
				t.Errorf("got %+v %v, want %s %v %v %v", m, ok, tc.agent, tc.expires, tc.ids, tc.ok)
			}
		})
	}
	if _, ok, err := LookupMinted(filepath.Join(t.TempDir(), "none"), "task-1"); ok || err != nil {
		t.Errorf("missing state dir: got %v %v, want not found and no error", ok, err)
	}
}

// FuzzLookupMinted reads arbitrary bytes as the minted list: it never
// fails or panics, and an id recorded after them is always found.
func FuzzLookupMinted(f *testing.F) {
	f.Add([]byte("task-1 billing 2026-11-26T10:45:00Z task-1\n"), "task-2")
	f.Add([]byte("a b c d e\n\n  \x00\xff"), "a")
	f.Add([]byte(strings.Repeat("x", 5000)), "x")
	key := testKey(1)
	f.Fuzz(func(t *testing.T, junk []byte, id string) {
		if checkID(id) != nil {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MintedFile), junk, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LookupMinted(dir, id); err != nil {
			t.Fatalf("junk: %v", err)
		}
		if len(junk) > 0 && junk[len(junk)-1] != '\n' {
			// An unterminated line is one being written: end it, as
			// another minter's O_APPEND write would follow it.
			f, _ := os.OpenFile(filepath.Join(dir, MintedFile), os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("\n"))
			f.Close()
		}
		if err := RecordMinted(dir, mustMint(t, key, id, Restriction{TTL: time.Minute})); err != nil {
			t.Fatal(err)
		}
		if m, ok, err := LookupMinted(dir, id); err != nil || !ok || m.Agent != "billing" || m.ID != id {
			t.Fatalf("recorded id %q: got %+v %v %v", id, m, ok, err)
		}
	})
}
