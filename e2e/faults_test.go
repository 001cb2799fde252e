package e2e

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawUpstream is an upstream on 127.0.0.1 that speaks HTTP/1.1 by hand, so
// that it can misbehave in ways net/http will not: reset a connection
// mid-header, cut a body short, send more than it announced. Each request
// it reads goes to serve, which writes to the connection itself and
// reports whether the connection may carry another request.
type rawUpstream struct {
	ln    net.Listener
	serve func(c net.Conn, r *http.Request) (keepAlive bool)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newRawUpstream starts a raw upstream, over TLS with a certificate for
// names signed by the test CA, or over plain TCP when names is nil.
func newRawUpstream(t *testing.T, names []string, serve func(net.Conn, *http.Request) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if names != nil {
		cert := upstreamCA(t).leaf(t, names, time.Now().Add(12*time.Hour))
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	u := &rawUpstream{ln: ln, serve: serve, conns: make(map[net.Conn]struct{})}
	go u.accept()
	t.Cleanup(u.close)
	return u
}

// Addr returns the upstream's "127.0.0.1:port".
func (u *rawUpstream) Addr() string { return u.ln.Addr().String() }

func (u *rawUpstream) accept() {
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		go u.handle(c)
	}
}

func (u *rawUpstream) handle(c net.Conn) {
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.mu.Unlock()
	}()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if !u.serve(c, r) {
			return
		}
	}
}

// close stops the listener and closes every connection, which ends the
// handlers that hang.
func (u *rawUpstream) close() {
	u.ln.Close()
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		c.Close()
	}
}

// reset closes c with a TCP RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// faultyServe answers by the request path. It echoes the Authorization
// value it received (the real secret) into the bodies it breaks, followed by
// the first half of it, so that a test can see whether a broken stream
// leaks either.
func faultyServe(c net.Conn, r *http.Request) bool {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	leaky := "token=" + key + " again=" + key[:len(key)/2]
	switch r.URL.Path {
	case "/ok":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	case "/reset-before-headers":
		reset(c)
	case "/reset-mid-headers":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/pl")
		time.Sleep(20 * time.Millisecond)
		reset(c)
	case "/hang":
		_, _ = io.Copy(io.Discard, c) // until keyhole gives up and closes
	case "/chunked-reset", "/chunked-close":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(leaky), leaky)
		time.Sleep(50 * time.Millisecond)
		if strings.HasSuffix(r.URL.Path, "reset") {
			reset(c)
		}
	case "/length-reset", "/length-close":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n%s", leaky)
		time.Sleep(50 * time.Millisecond)
		if strings.HasSuffix(r.URL.Path, "reset") {
			reset(c)
		}
	case "/stall-mid-body":
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(leaky), leaky)
		_, _ = io.Copy(io.Discard, c) // silent until keyhole gives up and closes
	case "/big-length-reset":
		// Past the size the scrubber reads whole: this body streams.
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n%s%s", strings.Repeat("x", 80000), leaky)
		time.Sleep(50 * time.Millisecond)
		reset(c)
	case "/overlong":
		// Five bytes announced, then a whole forged response in the same
		// write; then the connection goes on serving honestly.
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"+
			"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Forged: yes\r\n\r\nforged")
		return true
	default:
		fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		return true
	}
	return false
}

// faultRules names a secret allowed toward the faulty upstreams, over TLS
// (faulty.test) and plain HTTP (plainfaulty.test), and a host nothing
// listens on (refused.test).
const faultRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [faulty.test, plainfaulty.test, refused.test]
    allow_plaintext: true
resolve:
  faulty.test: %s
  plainfaulty.test: %s
  refused.test: %s
`

// newFaultyWorld starts the faulty upstreams and a keyhole whose upstream
// header timeout and idle timeout are one second.
func newFaultyWorld(t *testing.T, env ...string) *keyhole {
	t.Helper()
	tlsUp := newRawUpstream(t, []string{"faulty.test"}, faultyServe)
	plainUp := newRawUpstream(t, nil, faultyServe)
	rules := fmt.Sprintf(faultRules, tlsUp.Addr(), plainUp.Addr(), closedPort(t))
	return startKeyhole(t, rules, append([]string{"KEYHOLE_UPSTREAM_HEADER_TIMEOUT=1s", "KEYHOLE_IDLE_TIMEOUT=1s"}, env...)...)
}

// faultyGet sends GET url with the STRIPE placeholder through c and reads
// the whole body, returning the body read before any error.
func faultyGet(c *http.Client, url string) (*http.Response, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer <<STRIPE>>")
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// assertServes checks that a normal request through k still works.
func assertServes(t *testing.T, k *keyhole, url string) {
	t.Helper()
	resp, body, err := faultyGet(k.GoClient(t, "", ""), url)
	if err != nil || resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("a normal request after the fault: got %v %q %v, want 200 \"ok\"", resp, body, err)
	}
}

// assertNoLeak checks a partial body for the secret and for the half of
// it that a broken stream held back.
func assertNoLeak(t *testing.T, what, body string) {
	t.Helper()
	assertNoSecretIn(t, what, body)
	if i := strings.Index(body, stripeValue[:len(stripeValue)/2]); i >= 0 {
		t.Errorf("%s holds the first half of secret STRIPE at offset %d", what, i)
	}
}

func TestUpstreamFaultsAreRefused(t *testing.T) {
	k := newFaultyWorld(t)
	cases := []struct {
		name, path, reason string
	}{
		{name: "connection refused", path: "refused.test/x", reason: "upstream_unreachable"},
		{name: "reset before headers", path: "/reset-before-headers", reason: "upstream_unreachable"},
		{name: "reset mid-headers", path: "/reset-mid-headers", reason: "upstream_unreachable"},
		{name: "hangs before headers", path: "/hang", reason: "upstream_timeout"},
	}
	for _, scheme := range []string{"https", "http"} {
		for _, tc := range cases {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				url := faultyURL(scheme, tc.path)
				start := time.Now()
				resp, body, err := faultyGet(k.GoClient(t, "", ""), url)
				if err != nil {
					t.Fatalf("got error %v, want a 502 refusal", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("the refusal took %v", d)
				}
				assertRefusal(t, response{Status: resp.StatusCode, Body: body}, http.StatusBadGateway, tc.reason, "")
				id := resp.Header.Get("X-Keyhole-Request-Id")
				rec := k.WaitAudit(t, func(r map[string]any) bool { return r["request_id"] == id })
				if rec["decision"] != "deny" || rec["reason"] != tc.reason || rec["status"] != float64(502) || rec["scheme"] != scheme {
					t.Errorf("audit record: got decision %v reason %v status %v scheme %v, want deny %s 502 %s",
						rec["decision"], rec["reason"], rec["status"], rec["scheme"], tc.reason, scheme)
				}
				assertServes(t, k, faultyURL(scheme, "/ok"))
			})
		}
	}
}

// faultyURL returns the URL of path on the faulty upstream for scheme; a
// path that starts with a host names that host instead.
func faultyURL(scheme, path string) string {
	if !strings.HasPrefix(path, "/") {
		return scheme + "://" + path
	}
	if scheme == "http" {
		return "http://plainfaulty.test" + path
	}
	return "https://faulty.test" + path
}

func TestUpstreamBodyCutShortIsCutShortForTheClient(t *testing.T) {
	k := newFaultyWorld(t)
	paths := []string{"/chunked-reset", "/chunked-close", "/length-reset", "/length-close", "/big-length-reset", "/stall-mid-body"}
	for _, scheme := range []string{"https", "http"} {
		for _, path := range paths {
			url := faultyURL(scheme, path)
			t.Run(scheme+path+"/go", func(t *testing.T) {
				resp, body, err := faultyGet(k.GoClient(t, "", ""), url)
				if resp == nil {
					t.Fatalf("got no response: %v", err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("got status %d, want 200 and a broken body", resp.StatusCode)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("reading the body: got error %v, want %v", err, io.ErrUnexpectedEOF)
				}
				assertNoLeak(t, "the partial body", body)
				rec := k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == path && r["scheme"] == scheme })
				if e, _ := rec["error"].(string); rec["decision"] != "allow" || !strings.Contains(e, "upstream body") {
					t.Errorf("audit record: got decision %v error %q, want allow and the upstream body's failure", rec["decision"], e)
				}
				assertServes(t, k, faultyURL(scheme, "/ok"))
			})
			t.Run(scheme+path+"/curl", func(t *testing.T) {
				code, body := curlExit(t, k, url)
				// Over an h2 tunnel (curl offers h2) a broken body resets
				// the stream: 92.
				if code != 18 && code != 56 && code != 92 {
					t.Errorf("curl exit code: got %d, want 18 (partial file), 56 (receive failure) or 92 (HTTP/2 stream reset)", code)
				}
				assertNoLeak(t, "the partial body", body)
			})
		}
	}
}

// curlExit fetches url through k with curl and the STRIPE placeholder,
// and returns curl's exit code and the body it saved.
func curlExit(t *testing.T, k *keyhole, url string) (int, string) {
	t.Helper()
	need(t, "curl")
	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command("curl", "-sS", "--max-time", "10", "--proxy", "http://"+k.Addr, "--cacert", k.CAFile,
		"-H", "Authorization: Bearer <<STRIPE>>", "-o", out, url)
	cmd.Env = baseEnv()
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	return code, string(b)
}

func TestUpstreamSendsMoreThanItsContentLength(t *testing.T) {
	k := newFaultyWorld(t)
	for _, scheme := range []string{"https", "http"} {
		t.Run(scheme, func(t *testing.T) {
			c := k.GoClient(t, "", "")
			for i := range 3 { // the next requests go over the same client connection
				resp, body, err := faultyGet(c, faultyURL(scheme, "/overlong"))
				if err != nil || resp.StatusCode != http.StatusOK || body != "hello" {
					t.Fatalf("request %d: got %v %q %v, want 200 \"hello\"", i, resp, body, err)
				}
				resp, body, err = faultyGet(c, faultyURL(scheme, "/ok"))
				if err != nil {
					t.Fatalf("request %d after the overlong response: %v", i, err)
				}
				if body != "ok" || resp.Header.Get("X-Forged") != "" {
					t.Fatalf("request %d after the overlong response: got %d %q, want the upstream's own answer, not the forged one", i, resp.StatusCode, body)
				}
			}
		})
	}
}
