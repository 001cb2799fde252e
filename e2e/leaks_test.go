package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// leakyRules give STRIPE to leaky.test (a raw upstream that echoes the
// injected value in malformed places) and ranges.test (an echo that honours
// Range).
const leakyRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [leaky.test, ranges.test]
resolve:
  leaky.test: %s
  ranges.test: %s
`

// malformedUpstream answers each request on a raw TLS connection with a
// response that puts the injected value (the Authorization header less
// its scheme) where the request path says: /status, /header, /length,
// /te, /trailer, or /past (after the end of a body with a declared
// length).
func malformedUpstream(t *testing.T) net.Listener {
	t.Helper()
	cert := upstreamCA(t).leaf(t, []string{"leaky.test"}, time.Now().Add(time.Hour))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	serveConns(t, ln, serveMalformed)
	return ln
}

func serveMalformed(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		v := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		var resp string
		switch req.URL.Path {
		case "/status":
			resp = "HTTP/1.1 " + v + " OK\r\nContent-Length: 0\r\n\r\n"
		case "/header":
			resp = "HTTP/1.1 200 OK\r\n" + v + "\r\nContent-Length: 0\r\n\r\n"
		case "/length":
			resp = "HTTP/1.1 200 OK\r\nContent-Length: " + v + "\r\n\r\n"
		case "/te":
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: " + v + "\r\n\r\n"
		case "/trailer":
			resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n" + v + "\r\n\r\n"
		case "/past":
			resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + v
		}
		_, _ = io.WriteString(c, resp)
		if req.URL.Path != "/past" {
			return
		}
	}
}

// TestLogsHoldNoUpstreamBytes sends a secret to an upstream that echoes
// it in each malformed position (status line, header line,
// Content-Length, Transfer-Encoding, chunked trailer, bytes past the
// declared length) and an agent's malformed request line: keyhole runs at
// debug level, and neither its stderr nor the audit log may hold the
// value (the harness checks both when the test ends).
func TestLogsHoldNoUpstreamBytes(t *testing.T) {
	ln := malformedUpstream(t)
	rangesUp := newUpstream(t, []string{"ranges.test"}, nil)
	k := startKeyhole(t, fmt.Sprintf(leakyRules, ln.Addr(), rangesUp.Addr()))
	c := k.GoClient(t, "", "")
	for _, path := range []string{"/status", "/header", "/length", "/te", "/trailer", "/past"} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "https://leaky.test"+path, nil)
			req.Header.Set("Authorization", "Bearer <<STRIPE>>")
			resp, err := c.Do(req)
			if err != nil {
				return // the tunnel was cut: what matters is the logs
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assertNoSecretIn(t, "response", fmt.Sprint(resp.Header)+string(b))
		})
	}
	// The audit record of each exchange is written; one of them is the
	// chunked trailer's, whose error is a fixed class.
	// (waitAuditCount, unlike WaitAudit, prints no log when it fails.)
	waitAuditCount(t, k, 1, func(r map[string]any) bool {
		return r["path"] == "/trailer" && r["error"] == "upstream body: malformed header or trailer line"
	})
	// net/http's "Unsolicited response" went through the fixed sentence.
	waitStderr(t, k, "an upstream sent bytes after its response ended")
	t.Run("malformed request line", func(t *testing.T) {
		w := mustTunnel(t, k, "leaky.test:443")
		w.send("GET /x?token=" + plainValue + " HTTP/1.1 " + plainValue + "\r\nHost: leaky.test\r\n\r\n")
		resp, body, err := w.read(http.MethodGet)
		if err != nil {
			t.Fatal(err)
		}
		assertRefusal(t, response{Status: resp.StatusCode, Body: body}, http.StatusBadRequest, "bad_request", "")
		waitStderr(t, k, "malformed request inside a tunnel")
		waitAuditCount(t, k, 1, func(r map[string]any) bool { return r["reason"] == "bad_request" && r["host"] == "leaky.test" })
	})
}

// waitStderr waits until keyhole's stderr holds s.
func waitStderr(t *testing.T, k *keyhole, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(k.stderr.String(), s); {
		if time.Now().After(deadline) {
			t.Fatalf("keyhole's stderr does not hold %q", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRangeGetsTheWholeScrubbedBody checks that a request carrying an
// injected secret cannot ask for part of a response: Range and If-Range
// are dropped, so an echo that honours them returns the whole body, with
// the value scrubbed, never a slice of it.
func TestRangeGetsTheWholeScrubbedBody(t *testing.T) {
	ln := malformedUpstream(t)
	up := newUpstream(t, []string{"ranges.test"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := "auth=" + r.Header.Get("Authorization") + ";end"
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
	}))
	k := startKeyhole(t, fmt.Sprintf(leakyRules, ln.Addr(), up.Addr()))
	whole := "auth=Bearer <<STRIPE>>;end"
	for _, rng := range []string{"bytes=12-20", "bytes=12-15,16-19,20-40", "bytes=-10"} {
		for _, cl := range clients(t) {
			t.Run(cl.Name()+"/"+rng, func(t *testing.T) {
				resp := cl.Do(t, k, request{URL: "https://ranges.test/doc", Header: [][2]string{
					{"Authorization", "Bearer <<STRIPE>>"}, {"Range", rng}, {"If-Range", `"x"`}}})
				if resp.Status != http.StatusOK {
					t.Fatalf("got status %d (%s), want 200 with the whole body", resp.Status, resp.Err)
				}
				assertNoSecretIn(t, "response", fmt.Sprint(resp.Header)+resp.Body)
				if resp.Body != whole {
					t.Errorf("got body %q, want %q", redact(resp.Body), whole)
				}
				if last := up.Last(t); last.Header.Get("Range") != "" || last.Header.Get("If-Range") != "" {
					t.Errorf("the upstream received Range %q If-Range %q, want neither", last.Header.Get("Range"), last.Header.Get("If-Range"))
				}
			})
		}
	}
	t.Run("without a secret Range passes", func(t *testing.T) {
		resp := goClient{}.Do(t, k, request{URL: "https://ranges.test/doc", Header: [][2]string{{"Range", "bytes=0-3"}}})
		if resp.Status != http.StatusPartialContent || resp.Body != "auth" {
			t.Errorf("got %d %q, want 206 \"auth\"", resp.Status, resp.Body)
		}
	})
}
