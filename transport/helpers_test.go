package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a TLS test server and a Transport that dials it, counting
// the connections made both ways.
type upstream struct {
	srv      *httptest.Server
	tr       *Transport
	dials    atomic.Int64 // made by the Transport
	accepted atomic.Int64 // seen by the server
	idled    atomic.Int64 // times a server connection went idle
	url      string
}

// startUpstream runs h over TLS, offering HTTP/2 when h2 is set, and
// returns it with a Transport configured by cfg (DialTLS filled in).
func startUpstream(t testing.TB, h2 bool, h http.HandlerFunc, cfg Config) *upstream {
	t.Helper()
	return startConfigured(t, h2, h, cfg, nil)
}

// startBreaksSecond starts an HTTP/1.1 upstream that answers "hello" to
// the first request of each connection and hands the second to breakOff,
// which hijacks the connection and breaks it; requests counts every
// request the upstream saw.
func startBreaksSecond(t *testing.T, breakOff func(w http.ResponseWriter)) (u *upstream, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	type connKey struct{}
	u = startConfigured(t, false, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Context().Value(connKey{}).(*atomic.Int64).Add(1) == 2 {
			breakOff(w)
			return
		}
		io.WriteString(w, "hello")
	}, Config{}, func(s *http.Server) {
		s.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, new(atomic.Int64))
		}
	})
	return u, requests
}

// startConfigured is startUpstream; configure, when not nil, sets up the
// server before it starts.
func startConfigured(t testing.TB, h2 bool, h http.HandlerFunc, cfg Config, configure func(*http.Server)) *upstream {
	t.Helper()
	u := &upstream{}
	u.srv = httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(u.srv.Config)
	}
	u.srv.EnableHTTP2 = h2
	u.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			u.accepted.Add(1)
		case http.StateIdle:
			u.idled.Add(1)
		}
	}
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(u.srv.Certificate())
	cfg.DialTLS = func(ctx context.Context, addr string) (net.Conn, error) {
		u.dials.Add(1)
		host, _, _ := net.SplitHostPort(addr)
		d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12, NextProtos: NextProtos()}}
		return d.DialContext(ctx, "tcp", addr)
	}
	u.tr = New(cfg)
	t.Cleanup(u.tr.CloseIdleConnections)
	u.url = u.srv.URL
	return u
}

// do sends a request and reads its body whole.
func (u *upstream) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, u.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := u.tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return resp, string(b)
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idleCount returns the idle HTTP/1.1 connections pooled.
func (tr *Transport) idleCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.nidle
}

// slowReader yields its chunks one Read at a time, waiting on next before
// each one after the first.
type slowReader struct {
	chunks []string
	next   chan struct{}
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	if r.next != nil {
		<-r.next
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func (r *slowReader) Close() error { return nil }
