package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemRootsFile(t *testing.T) {
	dir := t.TempDir()
	bundle := filepath.Join(dir, "roots.pem")
	writeFile(t, bundle, []byte("roots"), 0o644)
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		env     string
		want    string
		wantErr string
	}{
		{name: "SSL_CERT_FILE", env: bundle, want: bundle},
		{name: "SSL_CERT_FILE missing", env: missing, wantErr: "certs: system roots from SSL_CERT_FILE: stat " + missing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SSL_CERT_FILE", tc.env)
			got, err := SystemRootsFile()
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("error: got %v, want one starting %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v, want %q, nil", got, err, tc.want)
			}
		})
	}

	t.Run("system default", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", "")
		got, err := SystemRootsFile()
		if err != nil {
			if !strings.Contains(err.Error(), "/etc/ssl/certs/ca-certificates.crt") {
				t.Errorf("error: got %q, want it to list the places looked in", err)
			}
			t.Skipf("no system roots here: %v", err)
		}
		if _, err := os.Stat(got); err != nil {
			t.Errorf("got %q, which does not exist: %v", got, err)
		}
	})
}

func TestWriteTrustBundle(t *testing.T) {
	a := loadCA(t, Options{})
	other := writeCA(t, t.TempDir(), func(*x509.Certificate) {})
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})

	tests := []struct {
		name  string
		roots []byte
	}{
		{"roots end in a newline", otherPEM},
		{"roots lack the final newline", bytes.TrimSuffix(otherPEM, []byte("\n"))},
		{"roots with comments", append([]byte("# a distribution's bundle\n"), otherPEM...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			roots := filepath.Join(dir, "roots.pem")
			writeFile(t, roots, tc.roots, 0o644)
			t.Setenv("SSL_CERT_FILE", roots)
			path := filepath.Join(dir, "bundle.pem")
			writeFile(t, path, []byte("stale"), 0o600) // replaced, mode and all

			if err := a.WriteTrustBundle(path); err != nil {
				t.Fatalf("WriteTrustBundle: %v", err)
			}
			got := bundleCerts(t, path)
			if len(got) != 2 || !got[0].Equal(other) || !got[1].Equal(a.Certificate()) {
				t.Errorf("bundle: got %d certificates, want the system root then the CA", len(got))
			}
			if got := mode(t, path); got != 0o644 {
				t.Errorf("mode: got %04o, want %04o", got, 0o644)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Errorf("files in dir: got %d, want 2 (no temporary file left)", len(entries))
			}
		})
	}
}

func TestWriteTrustBundleSystemRoots(t *testing.T) {
	t.Setenv("SSL_CERT_FILE", "")
	roots, err := SystemRootsFile()
	if err != nil {
		t.Skipf("no system roots here: %v", err)
	}
	a := loadCA(t, Options{})
	path := filepath.Join(t.TempDir(), "bundle.pem")
	if err := a.WriteTrustBundle(path); err != nil {
		t.Fatalf("WriteTrustBundle: %v", err)
	}
	got := bundleCerts(t, path)
	want := len(bundleCerts(t, roots)) + 1
	if len(got) != want || !got[len(got)-1].Equal(a.Certificate()) {
		t.Errorf("bundle: got %d certificates, want %d: the system roots then the CA", len(got), want)
	}

	// A client trusting the bundle trusts the leaves.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(readBytes(t, path)) {
		t.Fatalf("bundle: no certificates parsed")
	}
	leaf, err := a.Leaf("api.example.test")
	if err != nil {
		t.Fatalf("Leaf: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "api.example.test"}); err != nil {
		t.Errorf("Verify against the bundle: %v", err)
	}
}

func TestWriteTrustBundleErrors(t *testing.T) {
	a := loadCA(t, Options{})
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	writeFile(t, roots, []byte("roots\n"), 0o644)
	huge := filepath.Join(dir, "huge.pem")
	writeFile(t, huge, bytes.Repeat([]byte("A"), maxBundleSize+1), 0o644)

	tests := []struct {
		name  string
		roots string
		path  string
		want  string
	}{
		{"roots missing", filepath.Join(dir, "missing.pem"), filepath.Join(dir, "b.pem"), "SSL_CERT_FILE"},
		{"roots too large", huge, filepath.Join(dir, "b.pem"), "larger than"},
		{"no such dir", roots, filepath.Join(dir, "absent", "b.pem"), "certs: write trust bundle " + filepath.Join(dir, "absent", "b.pem")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SSL_CERT_FILE", tc.roots)
			err := a.WriteTrustBundle(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error: got %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// bundleCerts parses every certificate in the PEM file at path.
func bundleCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := readBytes(t, path); ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		certs = append(certs, cert)
	}
}
