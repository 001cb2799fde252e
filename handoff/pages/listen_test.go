package pages

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/certs"
)

// serveTLS listens as cfg says on a free loopback port and serves the
// pages over the fake until the test ends.
func serveTLS(t *testing.T, cfg ListenConfig) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	ln, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, New(newFake(), Options{}), nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	})
	return ln.Addr().String()
}

// client trusts roots for serverName; its connections close before the
// test's server shuts down (which would wait for them).
func client(t *testing.T, roots *x509.CertPool, serverName string) *http.Client {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: serverName},
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestListenLeaf: with no cert_file the listener presents a leaf of
// keyhole's CA for base_url's host, verified by a client that trusts the
// CA; responses over TLS carry HSTS; headers are bounded.
func TestListenLeaf(t *testing.T) {
	ca, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, tc := range []struct{ base, serverName string }{
		{"https://Keyhole.Example.COM.:8443/", "keyhole.example.com"},
		{"https://127.0.0.1:8443", "127.0.0.1"},
		{"https://[::1]:8443", "::1"},
	} {
		t.Run(tc.base, func(t *testing.T) {
			addr := serveTLS(t, ListenConfig{BaseURL: tc.base, CA: ca})
			c := client(t, roots, tc.serverName)
			resp, err := c.Get("https://" + addr + "/s/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 || resp.Header.Get("Strict-Transport-Security") != hsts || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("got %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
			}
			if resp.ProtoMajor != 2 {
				t.Errorf("protocol %s, want HTTP/2", resp.Proto)
			}
			if _, err := client(t, roots, "other.example").Get("https://" + addr + "/"); err == nil {
				t.Error("the leaf verified for another host")
			}
			req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
			req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
			c1 := client(t, roots, tc.serverName)
			c1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
			c1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
			resp, err = c1.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("64 KiB of headers: got %d, want 431", resp.StatusCode)
			}
		})
	}
}

// TestListenCertFile: cert_file/key_file are presented instead of a leaf.
func TestListenCertFile(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "pages.test"}, DNSNames: []string{"pages.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := serveTLS(t, ListenConfig{BaseURL: "https://pages.test", CertFile: certFile, KeyFile: keyFile})
	resp, err := client(t, roots, "pages.test").Get("https://" + addr + "/assets/style.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("got %d", resp.StatusCode)
	}
}

// TestListenErrors: every problem is an error from Listen.
func TestListenErrors(t *testing.T) {
	ca, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		cfg  ListenConfig
		want string
	}{
		{"http base", ListenConfig{BaseURL: "http://k.example", CA: ca}, "https URL"},
		{"no host", ListenConfig{BaseURL: "https://", CA: ca}, "https URL"},
		{"not a url", ListenConfig{BaseURL: "://x", CA: ca}, "https URL"},
		{"no CA", ListenConfig{BaseURL: "https://k.example"}, "no CA"},
		{"wildcard host", ListenConfig{BaseURL: "https://*.example", CA: ca}, "leaf"},
		{"cert without key", ListenConfig{BaseURL: "https://k.example", CertFile: "/nonexistent"}, "go together"},
		{"missing cert", ListenConfig{BaseURL: "https://k.example", CertFile: "/nonexistent", KeyFile: "/nonexistent"}, "cert_file"},
		{"busy port", ListenConfig{Addr: busy.Addr().String(), BaseURL: "https://k.example", CA: ca}, "handoff listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Addr == "" {
				tc.cfg.Addr = "127.0.0.1:0"
			}
			ln, err := Listen(tc.cfg)
			if err == nil {
				ln.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}
