package statekeys_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/statekeys"
	"keyhole/store"
	"keyhole/tokens"
)

// secretVolume lays out keys the way the kubelet mounts a Secret: files in
// a timestamped directory, "..data" pointing at it, and each key a symlink
// "NAME -> ..data/NAME"; the files get mode (0440 with an fsGroup).
func secretVolume(t *testing.T, from string, names []string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_12_03_11_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ts, name), data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(ts, name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// listing is every name, mode and content under dir, to show it unchanged.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + "\n")
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCreateThenInstall(t *testing.T) {
	made := t.TempDir()
	paths, err := statekeys.Create(made)
	if err != nil {
		t.Fatal(err)
	}
	names := statekeys.Names(false)
	if len(paths) != len(names) {
		t.Fatalf("Create returned %d paths, want %d", len(paths), len(names))
	}
	again, err := statekeys.Create(made) // idempotent: the same keys
	if err != nil || !slices.Equal(again, paths) {
		t.Fatalf("second Create: %v, %v", again, err)
	}
	keys := secretVolume(t, made, names, 0o440)
	if err := os.Chmod(keys, 0o555); err != nil { // read-only, like the mount
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(keys, 0o755) })
	before := listing(t, keys)

	state := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// A key the state dir held before (an earlier container of the pod, a
	// rotated Secret) is replaced: the keys dir is the truth.
	if err := os.WriteFile(filepath.Join(state, tokens.KeyFile), []byte("stale\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := statekeys.Install(keys, state, false); err != nil {
		t.Fatal(err)
	}
	if after := listing(t, keys); after != before {
		t.Error("Install changed the keys dir")
	}
	for _, name := range names {
		want, _ := os.ReadFile(filepath.Join(made, name))
		got, err := os.ReadFile(filepath.Join(state, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in the state dir differs from the keys dir's", name) // never print keys
		}
		fi, err := os.Stat(filepath.Join(state, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	// The loaders read the installed keys and create nothing.
	if _, err := certs.Load(state, certs.Options{}); err != nil {
		t.Errorf("the installed CA does not load: %v", err)
	}
	k1, err := tokens.LoadOrCreateKey(made)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := tokens.LoadOrCreateKey(state)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Error("the installed token key differs from the keys dir's")
	}
	if _, err := store.OpenExisting(state, ""); err != nil {
		t.Errorf("the installed store keys do not open: %v", err)
	}
}

func TestInstallRefuses(t *testing.T) {
	made := t.TempDir()
	if _, err := statekeys.Create(made); err != nil {
		t.Fatal(err)
	}
	all := statekeys.Names(false)
	without := func(drop string) []string {
		return slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == drop })
	}
	tests := []struct {
		name   string
		names  []string
		mode   os.FileMode
		envKey bool
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{name: "missing token key", names: without(tokens.KeyFile), mode: 0o400, want: "token-key is missing"},
		{name: "missing CA key", names: without(certs.KeyFile), mode: 0o400, want: "ca-key.pem is missing"},
		{name: "world-readable", names: all, mode: 0o444, want: "has mode 0444"},
		{name: "group-writable", names: all, mode: 0o460, want: "has mode 0460"},
		{name: "store key and KEYHOLE_STORE_KEY", names: all, mode: 0o400, envKey: true, want: "KEYHOLE_STORE_KEY is set too"},
		{name: "misspelt name", names: all, mode: 0o400, want: "tokenkey is not a key keyhole reads",
			mutate: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "tokenkey"), []byte("x"), 0o400); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "not a regular file", names: without(audit.KeyFile), mode: 0o400, want: "is not a regular file",
			mutate: func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, audit.KeyFile), 0o700); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "too large", names: without(tokens.KeyFile), mode: 0o400, want: "larger than",
			mutate: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, tokens.KeyFile), make([]byte, 65<<10), 0o400); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys := secretVolume(t, made, tc.names, tc.mode)
			if tc.mutate != nil {
				tc.mutate(t, keys)
			}
			state := t.TempDir()
			err := statekeys.Install(keys, state, tc.envKey)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(tc.want, "missing") || strings.Contains(tc.want, "not a key") {
				// Checked before anything is written: no key of its own.
				if entries, _ := os.ReadDir(state); len(entries) > 0 {
					t.Errorf("the state dir got %d files from a refused keys dir", len(entries))
				}
			}
		})
	}
}
