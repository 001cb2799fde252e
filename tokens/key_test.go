package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"keyhole/secret"
)

func TestKeyNeverPrints(t *testing.T) {
	k := testKey(7)
	type wrapper struct {
		Key Key
		Ptr *Key
	}
	w := wrapper{Key: k, Ptr: &k}
	js, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("m", "k", k, "w", w)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("m", "k", k, "p", &k)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", k),
		"%s":   fmt.Sprintf("%s", k),
		"%q":   fmt.Sprintf("%q", k),
		"%x":   fmt.Sprintf("%x", k),
		"%#v":  fmt.Sprintf("%#v", k),
		"%+v":  fmt.Sprintf("%+v", w),
		"%#vw": fmt.Sprintf("%#v", w),
		"json": string(js),
		"slog": logBuf.String(),
		"err":  fmt.Errorf("wrap: %v", k).Error(),
	}
	forms := []string{string(k.b[:]), hex.EncodeToString(k.b[:]), base64.StdEncoding.EncodeToString(k.b[:])}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, f := range forms {
				if i := strings.Index(out, f[:12]); i >= 0 {
					t.Fatalf("output contains the key at offset %d", i)
				}
			}
			if !strings.Contains(out, secret.Redacted) {
				t.Fatalf("got %q, want it to contain %q", out, secret.Redacted)
			}
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("first LoadOrCreateKey: %v", err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got key file mode %04o, want 0600", got)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("got state dir mode %04o, want 0700", got)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatalf("second LoadOrCreateKey: %v", err)
	}
	k3, err := LoadKey(dir)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if k1.b != k2.b || k1.b != k3.b || k1.IsZero() {
		t.Fatal("got different keys from the same state dir, want one")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("got %d files in the state dir, want only %s", len(entries), KeyFile)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	dir := t.TempDir()
	keys := make([]Key, 8)
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(dir) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if keys[i].b != keys[0].b {
			t.Fatalf("caller %d got a different key from caller 0, want one key", i)
		}
	}
}

func TestLoadKeyErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, keySize)) + "\n"
	cases := []struct {
		name    string
		content string // "": no file
		mode    os.FileMode
		want    []string // in the error; "{path}" stands for the key file's path
		wantIs  error
	}{
		{name: "missing", wantIs: fs.ErrNotExist},
		{name: "group readable", content: good, mode: 0o640, want: []string{"{path}", "0640", "chmod 600 {path}"}},
		{name: "world readable", content: good, mode: 0o604, want: []string{"{path}", "0604", "chmod 600 {path}"}},
		{name: "group writable", content: good, mode: 0o620, want: []string{"0620", "chmod 600 {path}"}},
		{name: "short key", content: base64.StdEncoding.EncodeToString(make([]byte, 16)), mode: 0o600, want: []string{"does not hold"}},
		{name: "not base64", content: strings.Repeat("!", 44), mode: 0o600, want: []string{"does not hold"}},
		{name: "junk after key", content: good + "more", mode: 0o600, want: []string{"does not hold"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFile)
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadKey(dir)
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("got %v, want %v", err, tc.wantIs)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "{path}", path); !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if tc.content != "" {
				// LoadOrCreateKey refuses too and leaves the file alone.
				if _, err := LoadOrCreateKey(dir); err == nil {
					t.Error("LoadOrCreateKey: got no error, want one")
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	k1, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k1.IsZero() || k1.b == k2.b {
		t.Fatal("got a zero or repeated key, want fresh random keys")
	}
	if !(Key{}).IsZero() {
		t.Fatal("got a zero Key that is not IsZero")
	}
}
