package certs

import (
	"crypto/x509"
	"testing"
)

// FuzzLeafHost checks that Leaf never panics, and that any host it accepts
// gets a certificate that crypto/x509 verifies for exactly that host.
func FuzzLeafHost(f *testing.F) {
	for _, seed := range []string{"example.com", "127.0.0.1", "::1", "a_b.example", "*.example.com", "example.com:443", "[::1]", "a..b", "fe80::1%eth0", ""} {
		f.Add(seed)
	}
	a := loadCA(f, Options{})
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())
	f.Fuzz(func(t *testing.T, host string) {
		cert, err := a.Leaf(host)
		if err != nil {
			return
		}
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("Leaf(%q): accepted, but the certificate does not verify for it: %v", host, err)
		}
	})
}
