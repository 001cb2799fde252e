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
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// discUpstream serves the requests that clients abandon. active counts the
// handlers running: each ends only when keyhole lets go of the upstream
// request, so active back at zero means keyhole closed what it had opened.
type discUpstream struct {
	active atomic.Int64
	floods chan time.Time // when each /flood handler ended
}

func (d *discUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.active.Add(1)
	defer d.active.Add(-1)
	switch r.URL.Path {
	case "/ok":
		_, _ = io.WriteString(w, "ok")
	case "/upload":
		_, _ = io.Copy(io.Discard, r.Body)
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		for r.Context().Err() == nil {
			if _, err := io.WriteString(w, "data: tick\n\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	case "/flood":
		chunk := []byte(strings.Repeat("f", 32<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				d.floods <- time.Now()
				return
			}
		}
	}
}

// waitIdle waits up to 5 s for every handler to end.
func (d *discUpstream) waitIdle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for d.active.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upstream requests still open 5s after their clients left: keyhole holds them", d.active.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const discRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [disc.test, plaindisc.test]
    allow_plaintext: true
resolve:
  disc.test: %s
  plaindisc.test: %s
`

func newDiscWorld(t *testing.T, env ...string) (*keyhole, *discUpstream) {
	t.Helper()
	d := &discUpstream{floods: make(chan time.Time, 16)}
	tlsUp := newUpstream(t, []string{"disc.test"}, d)
	plainUp := newPlainUpstream(t, d)
	env = append([]string{"KEYHOLE_ADMIN_LISTEN=127.0.0.1:0"}, env...)
	return startKeyhole(t, fmt.Sprintf(discRules, tlsUp.Addr(), plainUp.Addr()), env...), d
}

// openRequest starts a request for path with the STRIPE placeholder over
// a new client connection, through a tunnel for https and as a plain proxy
// request for http, and returns the connection to go on with. extra is
// more header lines, each ending in CRLF.
func openRequest(t *testing.T, k *keyhole, scheme, method, path, extra string) net.Conn {
	t.Helper()
	var c net.Conn
	target := path
	if scheme == "https" {
		c = dialTunnel(t, k, "disc.test")
	} else {
		var err error
		if c, err = net.DialTimeout("tcp", k.Addr, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		target = "http://plaindisc.test" + path
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	host := map[string]string{"https": "disc.test", "http": "plaindisc.test"}[scheme]
	if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer <<STRIPE>>\r\n%s\r\n", method, target, host, extra); err != nil {
		t.Fatal(err)
	}
	return c
}

// admin returns the base URL of k's admin listener.
func (k *keyhole) admin(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`admin_addr=(\S+)`).FindStringSubmatch(k.stderr.String())
	if m == nil {
		t.Fatal("keyhole logged no admin address; start it with KEYHOLE_ADMIN_LISTEN")
	}
	return "http://" + m[1]
}

// metric returns the value of an unlabelled metric from k's /metrics.
func (k *keyhole) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(k.admin(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// assertNothingOpen checks that keyhole counts no open connection, tunnel
// or request in flight, allowing time for the last ones to close.
func (k *keyhole) assertNothingOpen(t *testing.T) {
	t.Helper()
	names := []string{"keyhole_open_connections", "keyhole_open_tunnels", "keyhole_requests_in_flight"}
	deadline := time.Now().Add(5 * time.Second)
	for _, name := range names {
		for {
			v := k.metric(t, name)
			if v == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: got %v, want 0 once every client has left", name, v)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestClientDisconnectsLeakNothing(t *testing.T) {
	k, up := newDiscWorld(t)
	const rounds = 15
	cases := []struct {
		name, path string
		run        func(t *testing.T, scheme string)
	}{
		{"mid-upload", "/upload", func(t *testing.T, scheme string) {
			c := openRequest(t, k, scheme, "POST", "/upload", "Content-Length: 1048576\r\n")
			c.Write(make([]byte, 64<<10))
			waitFor(t, "the upload to reach the upstream", func() bool { return up.active.Load() > 0 })
			c.Close()
		}},
		{"mid-stream", "/sse", func(t *testing.T, scheme string) {
			c := openRequest(t, k, scheme, "GET", "/sse", "")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("got %v %v, want 200", resp, err)
			}
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.Contains(line, "tick") {
				t.Fatalf("first event: got %q %v", line, err)
			}
			c.Close()
		}},
	}
	hostFor := map[string]string{"https": "disc.test", "http": "plaindisc.test"}
	// Warm up: a request of each kind leaves pooled upstream connections
	// that the baseline counts.
	for scheme, host := range hostFor {
		assertServesDisc(t, k, scheme+"://"+host+"/ok")
	}
	k.assertNothingOpen(t)
	base := k.settle(t, -1)
	t.Logf("before: %v", base)
	for _, tc := range cases {
		for scheme := range hostFor {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				for range rounds {
					tc.run(t, scheme)
					up.waitIdle(t)
				}
				// One audit record each, written within the audit's flush interval.
				count := func() int {
					n := 0
					for _, r := range k.AuditRecords(t) {
						if r["path"] == tc.path && r["scheme"] == scheme {
							n++
						}
					}
					return n
				}
				deadline := time.Now().Add(2 * time.Second)
				for count() < rounds && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if got := count(); got != rounds {
					t.Errorf("audit records for %s %s: got %d, want %d", scheme, tc.path, got, rounds)
				}
				// The upstream was fine: a broken-off upload is the agent's
				// doing, and a stream the agent left says so.
				for _, r := range k.AuditRecords(t) {
					if r["path"] == "/upload" && r["scheme"] == scheme && (r["reason"] != "client_closed" || r["status"] != float64(499)) {
						t.Errorf("audit record of an abandoned upload: got %v %v, want 499 client_closed", r["status"], r["reason"])
						break
					}
					if r["path"] == "/sse" && r["scheme"] == scheme && r["error"] != "the agent left before the end of the response" {
						t.Errorf("audit record of an abandoned stream: got error %q", r["error"])
						break
					}
				}
			})
		}
	}
	k.assertNothingOpen(t)
	after := k.settle(t, base.FDs+2)
	t.Logf("after %d abandoned requests of each kind: %v", rounds, after)
	if after.FDs > base.FDs+2 {
		t.Errorf("keyhole's file descriptors: got %d, want at most %d (baseline %d + 2)", after.FDs, base.FDs+2, base.FDs)
	}
	if after.Threads > base.Threads+4 {
		t.Errorf("keyhole's threads: got %d, want at most %d (baseline %d + 4)", after.Threads, base.Threads+4, base.Threads)
	}
	for scheme, host := range hostFor {
		assertServesDisc(t, k, scheme+"://"+host+"/ok")
	}
}

// assertServesDisc checks that a normal request to url works, over a new
// client connection that it closes.
func assertServesDisc(t *testing.T, k *keyhole, url string) {
	t.Helper()
	c := k.GoClient(t, "", "")
	defer c.CloseIdleConnections()
	resp, body, err := faultyGet(c, url)
	if err != nil || resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("a normal request: got %v %q %v, want 200 \"ok\"", resp, body, err)
	}
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

// procStats are a process's figures from /proc.
type procStats struct {
	FDs     int
	Threads int
	RSS     int64 // bytes
}

func (s procStats) String() string {
	return "fds " + strconv.Itoa(s.FDs) + ", threads " + strconv.Itoa(s.Threads) + ", RSS " + strconv.FormatInt(s.RSS>>20, 10) + " MiB"
}

// stats reads keyhole's open file descriptors, threads and resident
// memory from /proc.
func (k *keyhole) stats(t *testing.T) procStats {
	t.Helper()
	pid := k.cmd.Process.Pid
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Skipf("no /proc for keyhole: %v", err)
	}
	st := procStats{FDs: len(fds)}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		name, v, _ := strings.Cut(line, ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch name {
		case "Threads":
			st.Threads = int(n)
		case "VmRSS":
			st.RSS = n << 10
		}
	}
	return st
}

// settle waits up to 5 s for keyhole's descriptors to fall to at most
// want (want < 0: to stop changing), and returns its figures then.
func (k *keyhole) settle(t *testing.T, want int) procStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := k.stats(t)
	for {
		time.Sleep(100 * time.Millisecond)
		st := k.stats(t)
		if want >= 0 && st.FDs <= want || want < 0 && st.FDs == last.FDs || time.Now().After(deadline) {
			return st
		}
		last = st
	}
}

// dialTunnel opens a CONNECT tunnel through k to host:443 and completes
// the TLS handshake with keyhole's certificate for host.
func dialTunnel(t *testing.T, k *keyhole, host string) *tls.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", k.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", host, host)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		conn.Close()
		t.Fatalf("CONNECT %s: got %v %v, want 200", host, resp, err)
	}
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		conn.Close()
		t.Fatalf("TLS through the tunnel to %s: %v", host, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc
}
