package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawConn is the server's end of an h2Conn test pair: it counts the
// writes that reach it and, while hold is set, makes them wait for it to
// be closed.
type rawConn struct {
	*net.TCPConn
	writes atomic.Int64
	hold   atomic.Pointer[chan struct{}]
}

func (c *rawConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if h := c.hold.Load(); h != nil {
		<-*h
	}
	return c.TCPConn.Write(p)
}

// h2ConnPair returns an h2Conn with write timeout timeout on a loopback
// TLS connection, its raw connection, and the client's end. With small,
// the socket buffers are a few KiB, so that a client that does not read
// soon holds the writes back (and one that does is slow: TCP waits on
// its window).
func h2ConnPair(t *testing.T, timeout time.Duration, small bool) (*h2Conn, *rawConn, *tls.Conn) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"h2conn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	if small {
		_ = cc.(*net.TCPConn).SetReadBuffer(4 << 10)
		_ = sc.(*net.TCPConn).SetWriteBuffer(4 << 10)
	}
	raw := &rawConn{TCPConn: sc.(*net.TCPConn)}
	server := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	client := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "h2conn.test"})
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); raw.Close() })
	return newH2Conn(server, timeout), raw, client
}

// pattern returns n bytes that differ from one write to the next.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// Everything written arrives, in order, whether it was held or sent at
// once, and Close sends what is held before it closes.
func TestH2ConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	c, _, client := h2ConnPair(t, time.Minute, false)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	var want bytes.Buffer
	for i, n := range []int{9, 100, 4096, h2DirectWrite, 3, 70 << 10, 5000, 1, h2DirectWrite + 1, 17, 200 << 10, 9} {
		p := pattern(n, byte(i))
		want.Write(p)
		if m, err := c.Write(p); m != n || err != nil {
			t.Fatalf("write %d: got %d, %v, want %d, nil", i, m, err, n)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("the client got %d bytes, not the %d written in order", len(b), want.Len())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not get everything written")
	}
}

// Writes that come while one is under way go out together, in one write
// of the connection below.
func TestH2ConnCoalescesWritesWhileOneIsUnderWay(t *testing.T) {
	c, raw, client := h2ConnPair(t, time.Minute, false)
	hold := make(chan struct{})
	raw.hold.Store(&hold)
	before := raw.writes.Load()
	var want bytes.Buffer
	wrote := make(chan error, 1)
	go func() {
		for i := range 11 {
			p := pattern(100+i, byte(i))
			want.Write(p)
			if _, err := c.Write(p); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		close(hold)
		t.Fatal("small writes waited for the write under way")
	}
	close(hold)
	got := make([]byte, want.Len())
	_ = client.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading what was written: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the client did not get the writes in order")
	}
	if n := raw.writes.Load() - before; n > 2 {
		t.Fatalf("11 writes made %d writes below, want at most 2 (the first, then the rest together)", n)
	}
}

// A client that stops reading is cut off after the write timeout: the
// writer, held back once the held bytes reach their bound, gets an error.
func TestH2ConnCutsOffAPeerThatStopsReading(t *testing.T) {
	c, _, _ := h2ConnPair(t, 300*time.Millisecond, true)
	errc := make(chan error, 1)
	var taken atomic.Int64
	go func() {
		p := pattern(1<<10, 7)
		for {
			n, err := c.Write(p)
			taken.Add(int64(n))
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	select {
	case <-errc:
	case <-time.After(20 * time.Second):
		t.Fatalf("writes to a client that reads nothing still succeed after 20 s (%d bytes taken)", taken.Load())
	}
	// Socket buffers of a few KiB, TLS records, and the held bytes.
	if n := taken.Load(); n > 4<<20 {
		t.Fatalf("%d bytes taken for a client that reads nothing, want the held bytes bounded", n)
	}
}

// Close does not wait longer than closeFlush for a client that does not
// read what is held.
func TestH2ConnCloseIsBounded(t *testing.T) {
	c, _, _ := h2ConnPair(t, 0, true) // no write timeout: only Close's bound
	c.closeFlush = 200 * time.Millisecond
	written := make(chan struct{})
	go func() {
		defer close(written)
		p := pattern(1<<10, 3)
		for range 64 << 10 { // far more than the socket buffers hold
			if _, err := c.Write(p); err != nil {
				return
			}
		}
	}()
	// Let the writes fill the socket buffers and the held bytes.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		full := c.pending != nil && len(*c.pending) > h2MaxPending/2
		c.mu.Unlock()
		if full {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writes were never held back")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close still waits after 20 s for a client that reads nothing")
	}
	select {
	case <-written:
	case <-time.After(20 * time.Second):
		t.Fatal("a Write still waits after Close")
	}
}

// Streams of 1 MiB and of 1 KiB share an h2 tunnel: the large bodies,
// sent through flow control in frames of their own, and the small ones,
// held and sent together, all arrive whole and uncorrupted.
func TestH2LargeAndSmallStreamsTogether(t *testing.T) {
	large := pattern(1<<20, 11)
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/large" {
			w.Write(large)
			return
		}
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Authorization"))
	})
	tp := startKeyProxy(t, up, nil, Config{})
	target := "api.example.test:443"
	cc := dialH2(t, tp, target)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/s%d", i)
			if i%8 == 0 {
				path = "/large"
			}
			req, _ := http.NewRequest(http.MethodGet, "https://"+target+path, nil)
			req.Header.Set("Authorization", "Bearer <<KEY>>")
			resp, err := cc.RoundTrip(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case err != nil:
				errs <- path + ": " + err.Error()
			case path == "/large" && !bytes.Equal(b, large):
				errs <- fmt.Sprintf("a 1 MiB stream got %d bytes, not the body sent", len(b))
			case path != "/large" && string(b) != path+" Bearer <<KEY>>":
				errs <- "stream " + path + " got a wrong or unscrubbed body"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
