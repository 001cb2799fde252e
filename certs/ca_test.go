package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// initCA creates a CA in a fresh directory and returns the directory.
func initCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir
}

// writeCA writes to dir a CA built from the usual template after edit has
// changed it, bypassing createCA's checks, and returns its certificate.
func writeCA(t *testing.T, dir string, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, certFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeFile(t, filepath.Join(dir, keyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writeFile(t *testing.T, path string, data []byte, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // WriteFile keeps an existing file's mode
		t.Fatal(err)
	}
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestInitCreatesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "state")
	before := time.Now()
	created, err := Init(dir)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	if !created {
		t.Errorf("created: got %v, want %v", created, true)
	}

	for _, tc := range []struct {
		path string
		want fs.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, certFile), 0o644},
		{filepath.Join(dir, keyFile), 0o600},
	} {
		if got := mode(t, tc.path); got != tc.want {
			t.Errorf("mode of %s: got %04o, want %04o", tc.path, got, tc.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("files in state dir: got %d, want 2 (no temporary files left)", len(entries))
	}

	keyBlock, _ := pem.Decode(readBytes(t, filepath.Join(dir, keyFile)))
	if keyBlock == nil || keyBlock.Type != "PRIVATE KEY" {
		t.Fatalf("ca-key.pem: want a PKCS#8 PRIVATE KEY block")
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	certBlock, _ := pem.Decode(readBytes(t, filepath.Join(dir, certFile)))
	if certBlock == nil || certBlock.Type != "CERTIFICATE" {
		t.Fatalf("ca.pem: want a CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, isEC := key.(*ecdsa.PrivateKey)
	pub, _ := cert.PublicKey.(*ecdsa.PublicKey)

	tests := []struct {
		name      string
		got, want any
	}{
		{"key type", isEC, true},
		{"curve", ecKey != nil && ecKey.Curve == elliptic.P256(), true},
		{"key matches", pub != nil && pub.Equal(ecKey.Public()), true},
		{"IsCA", cert.IsCA, true},
		{"BasicConstraintsValid", cert.BasicConstraintsValid, true},
		{"MaxPathLen", cert.MaxPathLen, 0},
		{"MaxPathLenZero", cert.MaxPathLenZero, true},
		{"KeyUsage", cert.KeyUsage, x509.KeyUsageCertSign | x509.KeyUsageCRLSign},
		{"ExtKeyUsage", len(cert.ExtKeyUsage), 0},
		{"CommonName", cert.Subject.CommonName, "keyhole CA"},
		{"Organization", strings.Join(cert.Subject.Organization, ","), "keyhole"},
		{"OU is user@host", len(cert.Subject.OrganizationalUnit) == 1 && strings.Contains(cert.Subject.OrganizationalUnit[0], "@"), true},
		{"SubjectKeyId set", len(cert.SubjectKeyId) > 0, true},
		{"serial is large", cert.SerialNumber.BitLen() > 64, true},
		{"no SANs", len(cert.DNSNames) + len(cert.IPAddresses), 0},
		{"NotBefore about an hour ago", cert.NotBefore.After(before.Add(-time.Hour-time.Second)) && cert.NotBefore.Before(time.Now().Add(-time.Hour+time.Second)), true},
		{"NotAfter in ten years", cert.NotAfter.Sub(before).Round(24*time.Hour) >= 3650*24*time.Hour, true},
		{"self-signed", cert.CheckSignatureFrom(cert) == nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestInitIdempotent(t *testing.T) {
	dir := initCA(t)
	certPEM, keyPEM := readBytes(t, filepath.Join(dir, certFile)), readBytes(t, filepath.Join(dir, keyFile))

	created, err := Init(dir)
	if err != nil {
		t.Fatalf("second Init: %v", err)
	}
	if created {
		t.Errorf("created: got %v, want %v", created, false)
	}
	a, err := LoadOrCreate(dir, Options{})
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	if got := a.CertPEM(); !bytes.Equal(got, certPEM) {
		t.Errorf("CertPEM: got %q, want the ca.pem Init wrote", got)
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, certFile)), certPEM) {
		t.Errorf("ca.pem changed on a second Init")
	}
	if !bytes.Equal(readBytes(t, filepath.Join(dir, keyFile)), keyPEM) {
		t.Errorf("ca-key.pem changed on a second Init")
	}
}

func TestLoadOrCreateCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := LoadOrCreate(dir, Options{})
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	b, err := Load(dir, Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !a.Certificate().Equal(b.Certificate()) {
		t.Errorf("Load: got a different CA from the one LoadOrCreate created")
	}
	if bytes.Contains(a.CertPEM(), []byte("PRIVATE KEY")) {
		t.Errorf("CertPEM contains a private key")
	}
}

func TestLoadMissing(t *testing.T) {
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"no dir", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent") }},
		{"empty dir", func(t *testing.T) string { return t.TempDir() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir(t)
			_, err := Load(dir, Options{})
			if err == nil {
				t.Fatalf("Load: got nil error, want one")
			}
			for _, want := range []string{dir, `run "keyhole ca init"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error: got %q, want it to contain %q", err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, certFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Load created %s", certFile)
			}
		})
	}
}

func TestLoadKeyPermissions(t *testing.T) {
	tests := []struct {
		mode     fs.FileMode
		wantMode string // as the error spells it; empty: Load succeeds
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, "0644"},
		{0o640, "0640"},
		{0o604, "0604"},
		{0o660, "0660"},
		{0o602, "0602"},
		{0o620, "0620"},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			dir := initCA(t)
			keyPath := filepath.Join(dir, keyFile)
			if err := os.Chmod(keyPath, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, Options{})
			if tc.wantMode == "" {
				if err != nil {
					t.Fatalf("Load: got %v, want nil error", err)
				}
				return
			}
			want := "certs: " + keyPath + " has mode " + tc.wantMode + "; the CA key must be private: chmod 600 " + keyPath
			if err == nil || err.Error() != want {
				t.Errorf("Load error: got %v, want %q", err, want)
			}
			if _, err := Init(dir); err == nil || err.Error() != want {
				t.Errorf("Init error: got %v, want %q", err, want)
			}
		})
	}
}
