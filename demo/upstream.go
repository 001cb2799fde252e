package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"sync"
	"time"
)

// echoServer is the demo's upstream: an HTTPS server on 127.0.0.1 for the
// demo's host names that answers every request with the request's method,
// path and headers, as httpbin.org/anything does. It remembers the
// Authorization header of each request, so the demo can show what arrived.
type echoServer struct {
	srv   *http.Server
	ln    net.Listener
	caPEM []byte // the certificate of the CA that signed the server's

	mu       sync.Mutex
	received []string // Authorization of each request, in order
}

// newEchoServer starts the echo server with a certificate for names,
// signed by a CA made for this run only (ECDSA P-256, valid one day).
func newEchoServer(names []string) (*echoServer, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyhole demo upstream CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w", err)
	}
	e := &echoServer{ln: ln, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	e.srv = &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		},
	}
	go func() { _ = e.srv.ServeTLS(ln, "", "") }()
	return e, nil
}

// Addr is the server's address, 127.0.0.1:port.
func (e *echoServer) Addr() string { return e.ln.Addr().String() }

// Close stops the server.
func (e *echoServer) Close() error { return e.srv.Close() }

// Received returns the Authorization header of every request so far.
func (e *echoServer) Received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.received...)
}

// serveHTTP echoes the request back as JSON, headers included, so a
// secret that reached the server is in the response keyhole scrubs.
func (e *echoServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.received = append(e.received, r.Header.Get("Authorization"))
	e.mu.Unlock()
	headers := map[string]string{}
	for name := range r.Header {
		headers[name] = r.Header.Get(name)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"method": r.Method, "url": "https://" + r.Host + r.URL.Path, "headers": headers})
}
