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

// useSystemRoots makes path the only system roots file for the test.
func useSystemRoots(t *testing.T, path string) {
	t.Helper()
	saved := systemRootsFiles
	systemRootsFiles = []string{path}
	t.Cleanup(func() { systemRootsFiles = saved })
}

// TestWriteTrustBundleRerun is `eval "$(keyhole env)"` followed by keyhole
// env again: SSL_CERT_FILE then names keyhole's own bundle, which must not
// be read as the system roots (145 → 146 → 147 certificates), also after
// the state dir, and with it the CA and the bundle, is re-created.
func TestWriteTrustBundleRerun(t *testing.T) {
	dir := t.TempDir()
	root := writeCA(t, filepath.Join(dir, "root"), func(*x509.Certificate) {})
	roots := filepath.Join(dir, "system.pem")
	writeFile(t, roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644)
	useSystemRoots(t, roots)
	bundle := filepath.Join(dir, "ca-bundle.pem")
	want := func(t *testing.T, a *Authority) {
		t.Helper()
		got := bundleCerts(t, bundle)
		if len(got) != 2 || !got[0].Equal(root) || !got[1].Equal(a.Certificate()) {
			t.Errorf("bundle: got %d certificates, want 2: the system root then the current CA", len(got))
		}
	}

	a := loadCA(t, Options{})
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv(TrustBundleEnv, "")
	if err := a.WriteTrustBundle(bundle); err != nil {
		t.Fatalf("first run: %v", err)
	}
	want(t, a)
	first := readBytes(t, bundle)

	t.Run("again, marker only", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", bundle)
		for range 3 {
			if err := a.WriteTrustBundle(bundle); err != nil {
				t.Fatalf("WriteTrustBundle: %v", err)
			}
		}
		if !bytes.Equal(readBytes(t, bundle), first) {
			t.Errorf("bundle changed on a re-run; want the same bytes")
		}
	})
	t.Run("state dir re-created", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", bundle)
		t.Setenv(TrustBundleEnv, bundle)
		if err := os.Remove(bundle); err != nil {
			t.Fatal(err)
		}
		b := loadCA(t, Options{})
		if err := b.WriteTrustBundle(bundle); err != nil {
			t.Fatalf("WriteTrustBundle with SSL_CERT_FILE gone: %v", err)
		}
		want(t, b)
	})
	t.Run("no system roots: the old bundle without its keyhole CAs", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", bundle)
		useSystemRoots(t, filepath.Join(dir, "absent.pem"))
		b := loadCA(t, Options{})
		if err := b.WriteTrustBundle(bundle); err != nil {
			t.Fatalf("WriteTrustBundle: %v", err)
		}
		want(t, b)
	})
}

// TestWriteTrustBundleDropsKeyholeCAs: roots that hold earlier keyhole CAs
// (a bundle concatenated by hand, or written before bundles had a marker)
// keep everything else, byte for byte, and lose those CAs.
func TestWriteTrustBundleDropsKeyholeCAs(t *testing.T) {
	dir := t.TempDir()
	other := writeCA(t, filepath.Join(dir, "other"), func(*x509.Certificate) {})
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
	old := loadCA(t, Options{})
	// A look-alike that is not a CA stays: only keyhole's own CAs go.
	notCA := writeCA(t, filepath.Join(dir, "leaf"), func(c *x509.Certificate) {
		c.Subject.CommonName, c.Subject.Organization = caCommonName, []string{caOrganization}
		c.IsCA, c.MaxPathLenZero, c.KeyUsage = false, false, x509.KeyUsageDigitalSignature
	})
	notCAPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: notCA.Raw})
	var roots []byte
	roots = append(roots, "# comment\n"...)
	roots = append(roots, old.CertPEM()...)
	roots = append(roots, otherPEM...)
	roots = append(roots, old.CertPEM()...)
	roots = append(roots, notCAPEM...)
	path := filepath.Join(dir, "roots.pem")
	writeFile(t, path, roots, 0o644)
	t.Setenv("SSL_CERT_FILE", path)
	t.Setenv(TrustBundleEnv, "")

	a := loadCA(t, Options{})
	bundle := filepath.Join(dir, "bundle.pem")
	if err := a.WriteTrustBundle(bundle); err != nil {
		t.Fatalf("WriteTrustBundle: %v", err)
	}
	got := readBytes(t, bundle)
	want := bundleMarker + "# comment\n" + string(otherPEM) + string(notCAPEM) + string(a.CertPEM())
	if string(got) != want {
		t.Errorf("bundle:\ngot  %q\nwant %q", got, want)
	}
}
