package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
)

// BenchmarkTunnelHandshake measures a new tunnel up to the end of its TLS
// handshake: TCP connect, CONNECT and its answer, the handshake with the
// hybrid key exchange (X25519MLKEM768), then the client hangs up. Client
// and proxy run in this process: compare profiles with -cpuprofile and
// look at the proxy's side (serveTunnel and below).
func BenchmarkTunnelHandshake(b *testing.B) {
	tp := startTestProxy(b, nil, "resolve:\n  api.example.test: 127.0.0.1:9\n", Config{})
	cfg := &tls.Config{RootCAs: tp.caPool, ServerName: "api.example.test", NextProtos: []string{"http/1.1"}}
	openTunnel(b, tp.addr, cfg).Close() // the leaf is minted once, before the timer
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		tc := openTunnel(b, tp.addr, cfg)
		if tc.ConnectionState().CurveID != tls.X25519MLKEM768 {
			b.Fatalf("key exchange got %v, want X25519MLKEM768", tc.ConnectionState().CurveID)
		}
		tc.Close()
	}
}

// BenchmarkNewConnectionRequest measures one request on a connection of
// its own, as a client that sends Connection: close does: the tunnel, the
// handshake, a GET with a placeholder injected and a 1 KiB response
// scrubbed, and the close.
func BenchmarkNewConnectionRequest(b *testing.B) {
	body := make([]byte, 1<<10)
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	})
	tp := startBenchProxy(b, up)
	cfg := &tls.Config{RootCAs: tp.caPool, ServerName: "api.example.test", NextProtos: []string{"http/1.1"}}
	request := "GET /small HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<KEY>>\r\nConnection: close\r\n\r\n"
	get := func() {
		tc := openTunnel(b, tp.addr, cfg)
		defer tc.Close()
		if _, err := io.WriteString(tc, request); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK || err != nil || n != int64(len(body)) {
			b.Fatalf("got status %d, %d bytes, error %v; want 200, %d bytes", resp.StatusCode, n, err, len(body))
		}
	}
	get() // mint the leaf and open the upstream connection before the timer
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		get()
	}
}

// openTunnel opens a tunnel to api.example.test:443 through the proxy at
// addr and completes a TLS handshake in it.
func openTunnel(b *testing.B, addr string, cfg *tls.Config) *tls.Conn {
	b.Helper()
	c, err := connectRaw(addr, "api.example.test:443")
	if err != nil {
		b.Fatal(err)
	}
	tc := tls.Client(c, cfg)
	if err := tc.Handshake(); err != nil {
		b.Fatal(err)
	}
	return tc
}

// BenchmarkStreamEvent measures one server-sent event through a tunnel,
// from the upstream's write to the client's read, one event at a time
// (the upstream writes the next once the client has read the last): the
// per-event cost of the stream path (idle-body watch, scrub, the flush of
// held writes), with -cpuprofile.
func BenchmarkStreamEvent(b *testing.B) {
	next := make(chan struct{})
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		event := []byte("id: 1\ndata: 1733229012345678901\n\n")
		for {
			select {
			case <-r.Context().Done():
				return
			case _, ok := <-next:
				if !ok {
					return
				}
			}
			w.Write(event)
			f.Flush()
		}
	})
	tp := startBenchProxy(b, up)
	cfg := &tls.Config{RootCAs: tp.caPool, ServerName: "api.example.test", NextProtos: []string{"http/1.1"}}
	tc := openTunnel(b, tp.addr, cfg)
	defer tc.Close()
	if _, err := io.WriteString(tc, "GET /sse HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<KEY>>\r\n\r\n"); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReader(tc)
	next <- struct{}{}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("got %v, %v; want 200", resp, err)
	}
	events := bufio.NewReader(resp.Body)
	readEvent := func() {
		for {
			line, err := events.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) == 1 {
				return
			}
		}
	}
	readEvent()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		next <- struct{}{}
		readEvent()
	}
	b.StopTimer()
	close(next)
}
