package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closingRules send every test host to one upstream.
const closingRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [bodies.test]
resolve:
  bodies.test: %s
`

// bodiesUpstream serves /chunked (streamed in flushed chunks), /large
// (200 KiB with a Content-Length) and /sse (a few events); every body ends
// with "END".
func bodiesUpstream(t *testing.T) *upstream {
	t.Helper()
	return newUpstream(t, []string{"bodies.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked", "/sse":
			if r.URL.Path == "/sse" {
				w.Header().Set("Content-Type", "text/event-stream")
			}
			for i := range 5 {
				fmt.Fprintf(w, "data: event %d %s\n\n", i, strings.Repeat("x", 3000))
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "END")
		case "/large":
			body := strings.Repeat("0123456789abcdef", 200<<10/16) + "END"
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
		}
	}))
}

// TestConnectionCloseKeepsTheEnd checks that a client sending
// "Connection: close" gets the whole of a chunked, streamed or large
// response, with its final chunk and TLS close_notify: curl exits 0 (not
// 18), Go and Python read to the end without error.
func TestConnectionCloseKeepsTheEnd(t *testing.T) {
	up := bodiesUpstream(t)
	k := startKeyhole(t, fmt.Sprintf(closingRules, up.Addr()))
	for _, path := range []string{"/chunked", "/large", "/sse"} {
		url := "https://bodies.test" + path
		t.Run("curl"+path, func(t *testing.T) {
			need(t, "curl")
			cmd := exec.Command("curl", "-sS", "--max-time", "20", "--proxy", "http://"+k.Addr, "--cacert", k.CAFile,
				"-H", "Connection: close", url)
			cmd.Env = baseEnv()
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, stderr.String())
			}
			if !bytes.HasSuffix(out, []byte("END")) {
				t.Errorf("curl got %d bytes not ending with END", len(out))
			}
		})
		t.Run("go"+path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Close = true
			resp, err := k.GoClient(t, "", "").Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.HasSuffix(b, []byte("END")) {
				t.Errorf("go client read %d bytes, error %v; want the whole body", len(b), err)
			}
		})
		t.Run("python"+path, func(t *testing.T) {
			need(t, "/usr/bin/python3", "-c", "import requests")
			cmd := exec.Command("/usr/bin/python3", "-c", `
import sys, requests
r = requests.get(sys.argv[1], headers={"Connection": "close"}, timeout=20)
sys.stdout.write(r.text[-3:])
`, url)
			cmd.Env = append(baseEnv(), "HTTPS_PROXY=http://"+k.Addr, "REQUESTS_CA_BUNDLE="+k.CAFile)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || string(out) != "END" {
				t.Errorf("python requests: got %q, %v: %s; want the whole body", out, err, lastLine(stderr.String()))
			}
		})
	}
	t.Run("close_notify", func(t *testing.T) {
		// A raw client: after the response, the next read must be a
		// clean TLS close (io.EOF), not a bare TCP close.
		w := mustTunnel(t, k, "bodies.test:443")
		w.send(rawReq("GET /chunked HTTP/1.1", "Host: bodies.test", "Connection: close"))
		if _, body, err := w.read(http.MethodGet); err != nil || !strings.HasSuffix(body, "END") {
			t.Fatalf("got %d bytes, %v; want the whole body", len(body), err)
		}
		if _, err := w.br.ReadByte(); err != io.EOF {
			t.Errorf("after the response: got %v, want io.EOF (close_notify)", err)
		}
	})
}

// TestHTTP10StreamsWithoutBuffering checks that a body of unknown length
// reaches an HTTP/1.0 client as it arrives, ended by closing the
// connection, not buffered whole: the upstream sends its first part and
// waits until the client has read it before sending the rest (24 MiB,
// more than keyhole ever buffered).
func TestHTTP10StreamsWithoutBuffering(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, []string{"bodies.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/stream" {
			select {
			case <-release:
			case <-time.After(15 * time.Second):
				return
			}
		}
		chunk := bytes.Repeat([]byte("y"), 64<<10)
		for range 24 << 4 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, "END")
	}))
	k := startKeyhole(t, fmt.Sprintf(closingRules, up.Addr()))
	w := mustTunnel(t, k, "bodies.test:443")
	w.send("GET /stream HTTP/1.0\r\nHost: bodies.test\r\n\r\n")
	_ = w.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(w.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) > 0 || resp.ContentLength != -1 || !resp.Close {
		t.Errorf("framing: got Transfer-Encoding %v, length %d, close %v; want a close-delimited body",
			resp.TransferEncoding, resp.ContentLength, resp.Close)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first part\n" {
		t.Fatalf("first part: got %q, %v (keyhole held the body back)", line, err)
	}
	close(release)
	n, err := io.Copy(io.Discard, br)
	if err != nil || n != 24<<20+3 {
		t.Errorf("rest of the body: got %d bytes, %v; want %d", n, err, 24<<20+3)
	}

	// Four clients at once (which took keyhole from 16 to 139 MiB when
	// it buffered): its memory stays far below four bodies.
	base := k.stats(t)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				if rss := k.stats(t).RSS; rss > peak.Load() {
					peak.Store(rss)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	got := make([]int64, 4)
	for i := range got {
		c := mustTunnel(t, k, "bodies.test:443")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send("GET /big HTTP/1.0\r\nHost: bodies.test\r\n\r\n")
			_ = c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			if resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet}); err == nil {
				got[i], _ = io.Copy(io.Discard, resp.Body)
			}
		}()
	}
	wg.Wait()
	close(done)
	for i, n := range got {
		if n != 11+24<<20+3 {
			t.Errorf("client %d got %d bytes, want %d", i, n, 11+24<<20+3)
		}
	}
	growth := (peak.Load() - base.RSS) >> 20
	t.Logf("RSS before %d MiB, peak %d MiB while four HTTP/1.0 clients read 24 MiB each", base.RSS>>20, peak.Load()>>20)
	if growth > 48 {
		t.Errorf("keyhole's RSS grew by %d MiB for four streamed bodies, want at most 48", growth)
	}
}

// TestALPNHTTP10 checks that a client offering only http/1.0 by ALPN
// (curl --http1.0) completes the handshake inside a tunnel.
func TestALPNHTTP10(t *testing.T) {
	up := bodiesUpstream(t)
	k := startKeyhole(t, fmt.Sprintf(closingRules, up.Addr()))
	t.Run("curl --http1.0", func(t *testing.T) {
		need(t, "curl")
		cmd := exec.Command("curl", "-sS", "--http1.0", "--max-time", "20", "--proxy", "http://"+k.Addr, "--cacert", k.CAFile,
			"https://bodies.test/chunked")
		cmd.Env = baseEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || !bytes.HasSuffix(out, []byte("END")) {
			t.Fatalf("curl --http1.0: got %d bytes, %v: %s", len(out), err, stderr.String())
		}
	})
	t.Run("raw ClientHello", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", k.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "CONNECT bodies.test:443 HTTP/1.1\r\nHost: bodies.test:443\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "bodies.test", RootCAs: keyholeRoots(t, k), NextProtos: []string{"http/1.0"}})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake offering only http/1.0: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "http/1.0" {
			t.Errorf("negotiated %q, want http/1.0", p)
		}
	})
}
