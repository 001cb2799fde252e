package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
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

// FuzzWriteRoots checks the copy of a roots bundle that WriteTrustBundle
// makes: it never panics, holds no keyhole CA, keeps every other
// certificate in order, ends in a newline, and copying the copy changes
// nothing (so re-running keyhole env is idempotent).
func FuzzWriteRoots(f *testing.F) {
	a := loadCA(f, Options{})
	ca := string(a.CertPEM())
	for _, seed := range []string{"", "# comment\n", ca, bundleMarker + ca, "x" + ca + "y", ca + ca, "-----BEGIN CERTIFICATE-----\n", "-----BEGIN X-----\nAAAA\n-----END X-----\n" + ca} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var once, twice bytes.Buffer
		writeRoots(&once, data)
		writeRoots(&twice, once.Bytes())
		out := once.Bytes()
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Errorf("the copy does not end in a newline")
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Errorf("copying the copy changed it")
		}
		var kept []*x509.Certificate
		for rest := out; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if isKeyholeCA(block) {
				t.Errorf("the copy holds a keyhole CA")
			}
			if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" {
				kept = append(kept, c)
			}
		}
		var want []*x509.Certificate
		for rest := data; ; {
			var block *pem.Block
			if block, rest = pem.Decode(rest); block == nil {
				break
			}
			if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" && !isKeyholeCA(block) {
				want = append(want, c)
			}
		}
		if len(kept) != len(want) {
			t.Errorf("the copy holds %d other certificates, want %d", len(kept), len(want))
		}
	})
}
