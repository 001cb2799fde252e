package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// tunnelTLS opens a CONNECT tunnel through k to host:443 and completes a
// TLS handshake in it offering protos.
func tunnelTLS(t *testing.T, k *keyhole, host string, protos []string) *tls.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", k.Addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", host, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: got %v %v, want 200", host, resp, err)
	}
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool, NextProtos: protos})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS through the tunnel to %s: %v", host, err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; len(protos) > 0 && got != protos[0] {
		t.Fatalf("ALPN: got %q, want %q", got, protos[0])
	}
	_ = conn.SetDeadline(time.Time{})
	return tc
}

// h2Conn is an HTTP/2 client connection through a tunnel of k to host.
func h2Conn(t *testing.T, k *keyhole, host string) *http2.ClientConn {
	t.Helper()
	cc, err := (&http2.Transport{}).NewClientConn(tunnelTLS(t, k, host, []string{"h2"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// settleGoroutines waits for keyhole's goroutines to come down to want,
// and returns the last count.
func settleGoroutines(t *testing.T, k *keyhole, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := k.metric(t, "go_goroutines")
		if g <= want || time.Now().After(deadline) {
			return g
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLoadH2ConcurrentStreams(t *testing.T) {
	const conns, streams = 20, 1000
	w := newLoadWorld(t, 1)
	warm := h2Conn(t, w.k, "api0.load.test")
	if problem := check(&http.Client{Transport: warm}, "api0.load.test"); problem != "" {
		t.Fatalf("warm-up: %s", problem)
	}
	warm.Close()
	base := w.quiesce(t, -1)
	baseG := settleGoroutines(t, w.k, 0)
	t.Logf("before: %v, %v goroutines", base, baseG)

	ccs := make([]*http2.ClientConn, conns)
	for i := range ccs {
		ccs[i] = h2Conn(t, w.k, "api0.load.test")
	}
	var failed atomic.Int64
	var firstFailure sync.Once
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if problem := check(&http.Client{Transport: ccs[i%conns], Timeout: 60 * time.Second}, "api0.load.test"); problem != "" {
				failed.Add(1)
				firstFailure.Do(func() { t.Errorf("first failed stream: %s", problem) })
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	peak := w.k.stats(t)
	t.Logf("%d concurrent streams over %d h2 connections in %v, %d failed; during: %v",
		streams, conns, elapsed.Round(time.Millisecond), failed.Load(), peak)
	if failed.Load() > 0 {
		t.Errorf("failed streams: got %d, want 0", failed.Load())
	}
	if got, want := w.echo.real.Load(), int64(streams+1); got != want || w.echo.other.Load() != 0 {
		t.Errorf("upstream requests with the real secret: got %d (and %d without), want %d", got, w.echo.other.Load(), want)
	}
	if got, want := w.auditRecords(t), streams+1; got != want {
		t.Errorf("audit records: got %d, want %d, one per stream", got, want)
	}
	b, _ := os.ReadFile(w.audit)
	if n := strings.Count(string(b), `"proto":"h2"`); n != streams+1 {
		t.Errorf("audit records with proto h2: got %d, want %d", n, streams+1)
	}
	for _, cc := range ccs {
		cc.Close()
	}
	w.k.assertNothingOpen(t)
	after := w.quiesce(t, base.FDs+3)
	g := settleGoroutines(t, w.k, baseG+5)
	t.Logf("after: %v, %v goroutines", after, g)
	if after.FDs > base.FDs+3 {
		t.Errorf("keyhole's file descriptors after the load: got %d, want at most %d (baseline %d + 3)", after.FDs, base.FDs+3, base.FDs)
	}
	if g > baseG+5 {
		t.Errorf("keyhole's goroutines after the load: got %v, want at most %v (baseline %v + 5)", g, baseG+5, baseG)
	}
}

// A client that opens a stream for a large body and never reads: HTTP/2
// flow control (and TCP under it) holds the body back, so keyhole reads
// little of it from the upstream and its memory stays bounded.
func TestH2ClientThatNeverReads(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short")
	}
	var sent atomic.Int64
	chunk := make([]byte, 64<<10)
	up := newUpstream(t, []string{"api.stripe.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 4096 { // 256 MiB if nothing held it back
			if _, err := w.Write(chunk); err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
		}
	}))
	k := startKeyhole(t, stripeRules(up.Addr()), "KEYHOLE_LOG_LEVEL=info", "KEYHOLE_ADMIN_LISTEN=127.0.0.1:0")
	before := k.stats(t)
	tc := tunnelTLS(t, k, "api.stripe.test", []string{"h2"})
	fr := http2.NewFramer(tc, tc)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block strings.Builder
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "api.stripe.test"}, {":path", "/big"},
		{"authorization", "Bearer <<STRIPE>>"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(block.String()), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// Never read: wait until the upstream has stopped sending.
	var last int64 = -1
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		n := sent.Load()
		if n == last && n > 0 {
			break
		}
		last = n
	}
	during := k.stats(t)
	t.Logf("upstream sent %d MiB of 256; keyhole before: %v, while held: %v", sent.Load()>>20, before, during)
	if sent.Load() > 32<<20 {
		t.Errorf("the upstream could send %d MiB to a client that reads nothing, want at most 32 MiB", sent.Load()>>20)
	}
	if during.RSS > before.RSS+48<<20 {
		t.Errorf("keyhole's RSS while the client does not read: got %d MiB, want at most %d MiB (before + 48)", during.RSS>>20, (before.RSS+48<<20)>>20)
	}
	tc.Close()
	k.assertNothingOpen(t)
}
