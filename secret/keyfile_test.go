package secret

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "some-key")
	if _, err := LoadKeyFile(path, 32); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: got %v, want fs.ErrNotExist", err)
	}
	k1, err := LoadOrCreateKeyFile(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeyFile(path, 32)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Len() != 32 || !k1.Equal(k2.Reveal()) {
		t.Fatal("the created key and the loaded key differ")
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("got modes %04o and %04o, want 0600 and 0700", fi.Mode().Perm(), di.Mode().Perm())
	}
	if _, err := LoadKeyFile(path, 16); err == nil {
		t.Error("a 32-byte key loaded as a 16-byte one")
	}
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreateKeyFile(path, 32); err == nil {
		t.Error("a group-readable key file was accepted")
	}
}
