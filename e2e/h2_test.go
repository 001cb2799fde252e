package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newH2Upstream is newUpstream offering h2 by ALPN.
func newH2Upstream(t *testing.T, names []string, h http.Handler) *upstream {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(echo)
	}
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		w.Header().Set("X-Upstream-Proto", r.Proto)
		h.ServeHTTP(w, r)
	}))
	u.EnableHTTP2 = true
	u.TLS = &tls.Config{Certificates: []tls.Certificate{upstreamCA(t).leaf(t, names, time.Now().Add(12*time.Hour))}}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func startH2World(t *testing.T) (*keyhole, *upstream) {
	up := newH2Upstream(t, []string{"api.stripe.test"}, nil)
	return startKeyhole(t, stripeRules(up.Addr())), up
}

// stripeRules is a rules file whose one secret, STRIPE, may go to
// api.stripe.test, pinned to addr.
func stripeRules(addr string) string {
	return fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
resolve:
  api.stripe.test: %s
`, addr)
}

// checkH2Echo checks an echo reply that went through keyhole over HTTP/2:
// the upstream got the secret, the agent gets the placeholder back.
func checkH2Echo(t *testing.T, k *keyhole, up *upstream, body, path string) {
	t.Helper()
	assertNoLeak(t, "the response", body)
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("reply is not the echo: %v", err)
	}
	if got := e.Headers["Authorization"]; len(got) != 1 || got[0] != "Bearer <<STRIPE>>" {
		t.Fatalf("echoed Authorization: got %v, want the placeholder back", got)
	}
	if up.Last(t).Header.Get("Authorization") != "Bearer "+stripeValue {
		t.Fatal("the upstream did not get the injected secret")
	}
	rec := k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == path })
	if rec["proto"] != "h2" || rec["decision"] != "allow" {
		t.Fatalf("audit record: got %v, want proto h2 and allow", rec)
	}
}

func TestCurlHTTP2(t *testing.T) {
	need(t, "curl")
	k, up := startH2World(t)
	out := filepath.Join(t.TempDir(), "body")
	cmd := exec.Command("curl", "-sS", "--http2", "--max-time", "20", "--proxy", "http://"+k.Addr, "--cacert", k.CAFile,
		"-H", "Authorization: Bearer <<STRIPE>>", "-o", out, "-w", "%{http_version}", "https://api.stripe.test/curl-h2")
	cmd.Env = baseEnv()
	version, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if string(version) != "2" {
		t.Fatalf("curl's HTTP version: got %q, want 2", version)
	}
	body, _ := os.ReadFile(out)
	checkH2Echo(t, k, up, string(body), "/curl-h2")
	if up.Last(t).Proto != "HTTP/2.0" {
		t.Fatalf("upstream protocol: got %s, want HTTP/2.0", up.Last(t).Proto)
	}
}

func TestGoHTTP2(t *testing.T) {
	k, up := startH2World(t)
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	proxyURL, _ := url.Parse(k.ProxyURL("", ""))
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for i := range 3 {
		path := fmt.Sprintf("/go-h2-%d", i)
		req, _ := http.NewRequest(http.MethodPost, "https://api.stripe.test"+path, strings.NewReader("body"))
		req.Header.Set("Authorization", "Bearer <<STRIPE>>")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.Header.Get("X-Upstream-Proto") != "HTTP/2.0" {
			t.Fatalf("got %s to keyhole and %s upstream, want HTTP/2 on both legs", resp.Proto, resp.Header.Get("X-Upstream-Proto"))
		}
		checkH2Echo(t, k, up, string(b), path)
	}
}

// nodeH2Client opens a CONNECT tunnel with http.request, then speaks
// HTTP/2 in it with http2.connect.
const nodeH2Client = `
const http = require('http'), http2 = require('http2'), tls = require('tls'), fs = require('fs');
const [proxy, ca, path] = process.argv.slice(2);
const [host, port] = proxy.split(':');
const req = http.request({host, port, method: 'CONNECT', path: 'api.stripe.test:443'});
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('CONNECT', res.statusCode); process.exit(2); }
  const session = http2.connect('https://api.stripe.test', {
    createConnection: () => tls.connect({socket, servername: 'api.stripe.test', ca: fs.readFileSync(ca), ALPNProtocols: ['h2']}),
  });
  session.on('error', (e) => { console.error(e.message); process.exit(3); });
  const s = session.request({':path': path, 'authorization': 'Bearer <<STRIPE>>'});
  let body = '';
  s.setEncoding('utf8');
  s.on('response', (h) => { if (h[':status'] !== 200) { console.error('status', h[':status']); process.exit(4); } });
  s.on('data', (d) => { body += d; });
  s.on('end', () => { process.stdout.write(body); session.close(); });
  s.end();
});
req.on('error', (e) => { console.error(e.message); process.exit(5); });
req.end();
`

func TestNodeHTTP2(t *testing.T) {
	need(t, "node", "-e", "require('http2')")
	k, up := startH2World(t)
	script := filepath.Join(t.TempDir(), "h2.js")
	if err := os.WriteFile(script, []byte(nodeH2Client), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, k.Addr, k.CAFile, "/node-h2")
	cmd.Env = baseEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	checkH2Echo(t, k, up, string(out), "/node-h2")
}
