package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadRejects(t *testing.T) {
	// Each setup damages the CA in dir; the error must name the file and
	// say what is wrong, and neither Load nor Init may touch the files.
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string // substrings of the error; "{CERT}" and "{KEY}" stand for the paths
	}{
		{
			name:  "cert not PEM",
			setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, certFile), []byte("garbage\n"), 0o644) },
			want:  []string{"{CERT}", `no "CERTIFICATE" PEM block`, "restore it"},
		},
		{
			name: "cert DER corrupt",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), 0o644)
			},
			want: []string{"{CERT}", "x509", "keyhole ca init"},
		},
		{
			name:  "key not PEM",
			setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, keyFile), []byte("garbage\n"), 0o600) },
			want:  []string{"{KEY}", `no PKCS#8 "PRIVATE KEY" PEM block`},
		},
		{
			name: "key DER corrupt",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), 0o600)
			},
			want: []string{"{KEY}", "is not a valid PKCS#8 private key"},
		},
		{
			name: "key in SEC1 form",
			setup: func(t *testing.T, dir string) {
				key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				der, err := x509.MarshalECPrivateKey(key)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
			},
			want: []string{"{KEY}", "PKCS#8"},
		},
		{
			name: "key of another CA",
			setup: func(t *testing.T, dir string) {
				other := initCA(t)
				writeFile(t, filepath.Join(dir, keyFile), readBytes(t, filepath.Join(other, keyFile)), 0o600)
			},
			want: []string{"{KEY}", "does not match the certificate in {CERT}"},
		},
		{
			name: "cert too large",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, certFile), bytes.Repeat([]byte("A"), maxPEMSize+1), 0o644)
			},
			want: []string{"{CERT}", "larger than"},
		},
		{
			name: "not a CA",
			setup: func(t *testing.T, dir string) {
				writeCA(t, dir, func(c *x509.Certificate) {
					c.IsCA, c.MaxPathLenZero, c.KeyUsage = false, false, x509.KeyUsageDigitalSignature
				})
			},
			want: []string{"{CERT}", "is not a CA certificate"},
		},
		{
			name: "CA without keyCertSign",
			setup: func(t *testing.T, dir string) {
				writeCA(t, dir, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign })
			},
			want: []string{"{CERT}", "keyCertSign"},
		},
		{
			name: "expired",
			setup: func(t *testing.T, dir string) {
				writeCA(t, dir, func(c *x509.Certificate) {
					c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
				})
			},
			want: []string{"{CERT}", "expired on", "keyhole ca init"},
		},
		{
			name: "not yet valid",
			setup: func(t *testing.T, dir string) {
				writeCA(t, dir, func(c *x509.Certificate) {
					c.NotBefore, c.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
				})
			},
			want: []string{"{CERT}", "is not valid until", "clock"},
		},
		{
			name:  "key missing",
			setup: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, keyFile)) },
			want:  []string{"{CERT} exists but {KEY} is missing", "restore the key, or remove {CERT}"},
		},
		{
			name:  "cert missing",
			setup: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, certFile)) },
			want:  []string{"{KEY} exists but {CERT} is missing", "refusing to overwrite the key"},
		},
		{
			name: "key is a directory",
			setup: func(t *testing.T, dir string) {
				remove(t, filepath.Join(dir, keyFile))
				if err := os.Mkdir(filepath.Join(dir, keyFile), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"{KEY} is not a regular file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := initCA(t)
			tc.setup(t, dir)
			certPath, keyPath := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
			before := snapshot(t, dir)
			r := strings.NewReplacer("{CERT}", certPath, "{KEY}", keyPath)

			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"Load", func() error { _, err := Load(dir, Options{}); return err }},
				{"Init", func() error { _, err := Init(dir); return err }},
				{"LoadOrCreate", func() error { _, err := LoadOrCreate(dir, Options{}); return err }},
			} {
				err := op.run()
				if err == nil {
					t.Fatalf("%s: got nil error, want one", op.name)
				}
				if !strings.HasPrefix(err.Error(), "certs: ") {
					t.Errorf("%s error: got %q, want the prefix %q", op.name, err, "certs: ")
				}
				for _, w := range tc.want {
					if want := r.Replace(w); !strings.Contains(err.Error(), want) {
						t.Errorf("%s error: got %q, want it to contain %q", op.name, err, want)
					}
				}
				if after := snapshot(t, dir); after != before {
					t.Errorf("%s changed the state dir: got %s, want %s", op.name, after, before)
				}
			}
		})
	}
}

func TestInitUnwritableDir(t *testing.T) {
	tests := []struct {
		name     string
		dir      func(t *testing.T) string
		needUser bool // permission bits do not stop root
		want     string
	}{
		{
			name: "parent is a file",
			dir: func(t *testing.T) string {
				file := filepath.Join(t.TempDir(), "file")
				writeFile(t, file, nil, 0o600)
				return filepath.Join(file, "state")
			},
			want: "certs: create state dir ",
		},
		{
			name: "read-only dir",
			dir: func(t *testing.T) string {
				dir := t.TempDir()
				if err := os.Chmod(dir, 0o500); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(dir, 0o700) })
				return dir
			},
			needUser: true,
			want:     "certs: create CA in ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needUser && os.Geteuid() == 0 {
				t.Skip("root ignores permission bits")
			}
			dir := tc.dir(t)
			created, err := Init(dir)
			if err == nil {
				t.Fatalf("Init: got nil error, want one")
			}
			if created {
				t.Errorf("created: got %v, want %v", created, false)
			}
			for _, want := range []string{tc.want, dir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error: got %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestBadOptionsWriteNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := LoadOrCreate(dir, Options{CacheSize: -1}); err == nil {
		t.Fatalf("LoadOrCreate: got nil error, want one")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state dir: got %v, want it not created", err)
	}
}

func TestWriteNewRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeFile(t, path, []byte("old"), 0o600)
	err := writeNew(path, []byte("new"), 0o600)
	if !errors.Is(err, errExist) {
		t.Errorf("writeNew: got %v, want %v", err, errExist)
	}
	if got := string(readBytes(t, path)); got != "old" {
		t.Errorf("contents: got %q, want %q", got, "old")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files in dir: got %d, want 1 (temporary file removed)", len(entries))
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes the files in dir, their modes and contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e.Name() + " " + info.Mode().String())
		if info.Mode().IsRegular() {
			b.WriteString(" " + string(readBytes(t, filepath.Join(dir, e.Name()))))
		}
		b.WriteString("; ")
	}
	return b.String()
}
