package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// faultHandler serves what the fault tests' clients abandon; active counts
// the handlers running.
func faultHandler(active *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		switch r.URL.Path {
		case "/upload":
			_, _ = io.Copy(io.Discard, r.Body)
		case "/sse":
			for r.Context().Err() == nil {
				if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}
}

// faultProxy is a proxy with short timeouts in front of a TLS upstream
// (api.example.test) and a plain one (plain.example.test).
type faultProxy struct {
	*testProxy
	plain  *httptest.Server
	active *atomic.Int64
}

func startFaultProxy(t *testing.T) *faultProxy {
	t.Helper()
	active := new(atomic.Int64)
	up := startTestUpstream(t, []string{"api.example.test"}, faultHandler(active))
	plain := httptest.NewServer(faultHandler(active))
	t.Cleanup(plain.Close)
	tp := startKeyProxy(t, up, plain, Config{HeaderTimeout: time.Second, HandshakeTimeout: time.Second, IdleTimeout: 2 * time.Second})
	return &faultProxy{testProxy: tp, plain: plain, active: active}
}

// open starts a request over a new connection: inside a tunnel when tls,
// else as a plain proxy request. It returns the connection, at the point
// where the request's header has been sent.
func (fp *faultProxy) open(t *testing.T, tunnel bool, method, path, extra string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fp.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	target, host := "http://plain.example.test"+path, "plain.example.test"
	if tunnel {
		fmt.Fprintf(c, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: got %v %v, want 200", resp, err)
		}
		tc := tls.Client(c, &tls.Config{ServerName: "api.example.test", RootCAs: fp.caPool})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c, target, host = tc, path, "api.example.test"
	}
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer <<KEY>>\r\n%s\r\n", method, target, host, extra)
	return c
}

// waitFor waits up to 5 s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientFaultsLeakNoGoroutine(t *testing.T) {
	fp := startFaultProxy(t)
	const rounds = 10
	var silent []net.Conn // left for the timeouts to close
	cases := []struct {
		name string
		run  func(t *testing.T, tunnel bool)
	}{
		{"abandoned upload", func(t *testing.T, tunnel bool) {
			c := fp.open(t, tunnel, "POST", "/upload", "Content-Length: 1048576\r\n")
			c.Write(make([]byte, 32<<10))
			waitFor(t, "the upload to reach the upstream", func() bool { return fp.active.Load() > 0 })
			c.Close()
		}},
		{"abandoned stream", func(t *testing.T, tunnel bool) {
			c := fp.open(t, tunnel, "GET", "/sse", "")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("got %v %v, want 200", resp, err)
			}
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.Contains(line, "tick") {
				t.Fatalf("first event: got %q %v", line, err)
			}
			c.Close()
		}},
		{"request header cut off", func(t *testing.T, tunnel bool) {
			c := fp.open(t, tunnel, "GET", "/ok", "X-Unfinished: yes")
			c.Close()
		}},
		{"silent until the timeouts", func(t *testing.T, tunnel bool) {
			c, err := net.Dial("tcp", fp.addr)
			if err != nil {
				t.Fatal(err)
			}
			if tunnel {
				fmt.Fprintf(c, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
			}
			// Closed by the proxy's timeouts: see below.
			silent = append(silent, c)
		}},
	}
	settle := func() int {
		fp.transport.CloseIdleConnections()
		fp.plain.CloseClientConnections()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	// Warm up, so that lazily started goroutines count in the baseline.
	for _, url := range []string{"https://api.example.test/ok", "http://plain.example.test/ok"} {
		c := fp.client()
		get(t, c, url)
		c.CloseIdleConnections()
	}
	base := settle()
	for _, tc := range cases {
		for _, tunnel := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/tunnel=%v", tc.name, tunnel), func(t *testing.T) {
				for range rounds {
					tc.run(t, tunnel)
				}
				waitFor(t, "the upstream handlers to end", func() bool { return fp.active.Load() == 0 })
			})
		}
	}
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("the proxy did not close a silent connection: %v", err)
		}
		c.Close()
	}
	var got int
	deadline := time.Now().Add(5 * time.Second)
	for got = settle(); got > base+2 && time.Now().Before(deadline); got = settle() {
	}
	if got > base+2 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: got %d, want at most %d (baseline %d + 2); stacks:\n%s", got, base+2, base, buf[:runtime.Stack(buf, true)])
	}
	waitFor(t, "no open connection, tunnel or request in flight", func() bool {
		conns, tunnels, inflight := fp.Stats()
		return conns == 0 && tunnels == 0 && inflight == 0
	})
}

// trickle writes s into c one byte every 100 ms until c fails or s is
// written, and returns how long after the start c was closed by the
// proxy (0: it was not).
func trickle(c net.Conn, s string) time.Duration {
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_ = c.SetReadDeadline(start.Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			closed <- 0
			return
		}
		closed <- time.Since(start)
	}()
	for i := 0; ; i++ {
		select {
		case d := <-closed:
			return d
		case <-time.After(100 * time.Millisecond):
			if i < len(s) {
				_, _ = c.Write([]byte{s[i]})
			}
		}
	}
}

func TestTunnelPhasesAreBounded(t *testing.T) {
	// Per-operation deadlines alone let a client that trickles one byte at
	// a time hold a tunnel forever; the handshake and each request header
	// have a bound of their own, and bodies and idle keep-alive do not.
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startTestProxy(t, up, "resolve:\n  api.example.test: UPSTREAM\n",
		Config{HeaderTimeout: 400 * time.Millisecond, HandshakeTimeout: 400 * time.Millisecond, IdleTimeout: 2 * time.Second})
	connect := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: got %v %v, want 200", resp, err)
		}
		return c
	}
	inner := func(t *testing.T) (*tls.Conn, *bufio.Reader) {
		tc := tls.Client(connect(t), &tls.Config{ServerName: "api.example.test", RootCAs: tp.caPool})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc, bufio.NewReader(tc)
	}
	exchange := func(t *testing.T, c net.Conn, br *bufio.Reader, req string) {
		t.Helper()
		if req != "" {
			io.WriteString(c, req)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("got %v %v, want 200", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
	}
	const get = "GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n"
	cut := []struct {
		name string
		open func(t *testing.T) net.Conn
	}{
		{"trickled TLS handshake", func(t *testing.T) net.Conn {
			c := connect(t)
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00})
			return c
		}},
		{"trickled first request header", func(t *testing.T) net.Conn {
			c, _ := inner(t)
			io.WriteString(c, "GET / HTTP/1.1\r\n")
			return c
		}},
		{"trickled second request header", func(t *testing.T) net.Conn {
			c, br := inner(t)
			exchange(t, c, br, get)
			return c
		}},
	}
	for _, tc := range cut {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.open(t)
			defer c.Close()
			if d := trickle(c, "X-Slow: "+strings.Repeat("a", 100)); d == 0 || d > 1500*time.Millisecond {
				t.Errorf("closed after %v, want within about 400ms of the first trickled byte", d)
			}
		})
	}
	t.Run("idle keep-alive longer than the header timeout", func(t *testing.T) {
		c, br := inner(t)
		defer c.Close()
		exchange(t, c, br, get)
		time.Sleep(time.Second)
		exchange(t, c, br, get)
	})
	t.Run("first request soon after a slow handshake", func(t *testing.T) {
		// Each phase has its own bound: 300 + 200 ms is more than either.
		raw := connect(t)
		time.Sleep(300 * time.Millisecond)
		c := tls.Client(raw, &tls.Config{ServerName: "api.example.test", RootCAs: tp.caPool})
		defer c.Close()
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		exchange(t, c, bufio.NewReader(c), get)
	})
	t.Run("slow request body", func(t *testing.T) {
		c, br := inner(t)
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 10\r\n\r\n")
		for range 10 {
			time.Sleep(100 * time.Millisecond)
			c.Write([]byte("x"))
		}
		exchange(t, c, br, "")
	})
}

func TestAbandonedUploadIsNotBlamedOnTheUpstream(t *testing.T) {
	// An agent that breaks off its request body is no upstream failure:
	// the audit record says so, and metrics on upstream_unreachable stay
	// quiet.
	fp := startFaultProxy(t)
	for _, tunnel := range []bool{true, false} {
		t.Run(fmt.Sprintf("tunnel=%v", tunnel), func(t *testing.T) {
			c := fp.open(t, tunnel, "POST", "/upload", "Content-Length: 1048576\r\n")
			c.Write(make([]byte, 32<<10))
			waitFor(t, "the upload to reach the upstream", func() bool { return fp.active.Load() > 0 })
			c.Close()
			var rec map[string]any
			waitFor(t, "the audit record", func() bool {
				for _, line := range strings.Split(fp.auditBuf.String(), "\n") {
					var r map[string]any
					if json.Unmarshal([]byte(line), &r) == nil && r["path"] == "/upload" && r["scheme"] == map[bool]string{true: "https", false: "http"}[tunnel] {
						rec = r
						return true
					}
				}
				return false
			})
			if rec["reason"] != "client_closed" || rec["status"] != float64(499) {
				t.Errorf("audit record: got %v %v, want 499 client_closed (the agent broke off its request)", rec["status"], rec["reason"])
			}
		})
	}
}

func TestStalledUpstreamBodyIsCutAfterTheIdleTimeout(t *testing.T) {
	// The transport bounds the wait for a response header, not for its
	// body: an upstream that goes silent mid-body must not hold the
	// request, whether its agent waits or has left.
	var active atomic.Int64
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		if r.URL.Path == "/small" {
			w.Header().Set("Content-Length", "100")
		}
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	plain := httptest.NewServer(up.Config.Handler)
	t.Cleanup(plain.Close)
	tp := startKeyProxy(t, up, plain, Config{IdleTimeout: time.Second})
	fp := &faultProxy{testProxy: tp}
	for _, tunnel := range []bool{true, false} {
		for _, path := range []string{"/stream", "/small"} {
			for _, agent := range []string{"waits", "leaves"} {
				t.Run(fmt.Sprintf("tunnel=%v%s/agent %s", tunnel, path, agent), func(t *testing.T) {
					start := time.Now()
					c := fp.open(t, tunnel, "GET", path, "")
					defer c.Close()
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil || resp.StatusCode != 200 {
						t.Fatalf("got %v %v, want 200", resp, err)
					}
					if agent == "leaves" {
						c.Close()
					} else if b, err := io.ReadAll(resp.Body); err == nil {
						t.Errorf("the stalled body ended cleanly after %q, want an error", b)
					}
					waitFor(t, "the upstream request to end", func() bool { return active.Load() == 0 })
					if d := time.Since(start); d > 2500*time.Millisecond {
						t.Errorf("the stalled upstream request was held %v, want about the idle timeout (1s)", d)
					}
				})
			}
		}
	}
	waitFor(t, "no request in flight", func() bool { _, _, inflight := tp.Stats(); return inflight == 0 })
}

// One timer watches each upstream body of a tunnel in turn: a body that
// keeps sending is never cut however long it lasts, and a body that stalls
// after earlier exchanges on the same tunnel is cut after the idle
// timeout.
func TestIdleTimeoutWatchesEachBodyOfATunnel(t *testing.T) {
	const idle = 600 * time.Millisecond
	var active atomic.Int64
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		active.Add(1)
		defer active.Add(-1)
		switch r.URL.Path {
		case "/slow": // an event every idle/3, for 4 idle timeouts
			for range 12 {
				io.WriteString(w, "data: tick\n\n")
				w.(http.Flusher).Flush()
				time.Sleep(idle / 3)
			}
		case "/stall":
			io.WriteString(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		default:
			io.WriteString(w, "ok")
		}
	})
	tp := startKeyProxy(t, up, nil, Config{IdleTimeout: idle})
	fp := &faultProxy{testProxy: tp}
	c := fp.open(t, true, "GET", "/", "")
	defer c.Close()
	br := bufio.NewReader(c)
	sent := true // open sent the first request
	exchange := func(path string) ([]byte, error) {
		t.Helper()
		if !sent {
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: api.example.test\r\n\r\n", path)
		}
		sent = false
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	for range 3 {
		if b, err := exchange("/"); err != nil || string(b) != "ok" {
			t.Fatalf("GET /: got %q, %v", b, err)
		}
	}
	if b, err := exchange("/slow"); err != nil || strings.Count(string(b), "tick") != 12 {
		t.Fatalf("a body sending every %v was cut: got %d events, %v", idle/3, strings.Count(string(b), "tick"), err)
	}
	start := time.Now()
	if b, err := exchange("/stall"); err == nil {
		t.Fatalf("the stalled body ended cleanly after %q, want an error", b)
	}
	waitFor(t, "the upstream request to end", func() bool { return active.Load() == 0 })
	if d := time.Since(start); d > 3*idle {
		t.Errorf("the stalled body was held %v, want about the idle timeout (%v)", d, idle)
	}
}
