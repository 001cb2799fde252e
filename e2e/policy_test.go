package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"keyhole/upstream/upstreamtest"
)

// listenLoopback opens a TCP listener on 127.0.0.1.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveConns runs handle, in a goroutine of its own, for each connection
// ln accepts, and closes ln when the test ends.
func serveConns(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
}

// tunnelRefusalRules deny blocked.test and open only port 443 of
// api.stripe.test; both are pinned to a listener that counts what was
// dialed.
const tunnelRefusalRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test]
egress:
  default: allow
  deny: [blocked.test]
resolve:
  blocked.test: %[1]s
  api.stripe.test: %[1]s
`

// TestReadableTunnelRefusals checks that a CONNECT refused for policy is
// answered inside the tunnel, so that each real client shows the JSON
// refusal (status, reason, request id) as a response, and that nothing is
// dialed for it.
func TestReadableTunnelRefusals(t *testing.T) {
	counterAddr, accepts := upstreamtest.Counting(t)
	k := startKeyhole(t, fmt.Sprintf(tunnelRefusalRules, counterAddr))
	cases := []struct {
		name, url, reason, text string
	}{
		{"deny list", "https://blocked.test/v1/x", "egress_denied", "blocked.test is on the egress deny list"},
		{"port", "https://api.stripe.test:8443/v1/x", "egress_denied", "port 8443"},
		{"private address", "https://localhost/v1/x", "private_address", "localhost resolves to a private"},
	}
	do := append(clients(t), nodeClient{})
	for _, cl := range do {
		for _, tc := range cases {
			t.Run(cl.Name()+"/"+tc.name, func(t *testing.T) {
				resp := cl.Do(t, k, request{URL: tc.url})
				assertRefusal(t, resp, http.StatusForbidden, tc.reason, "")
				m := resp.refusal(t)
				if msg, _ := m["error"].(string); !strings.Contains(msg, tc.text) {
					t.Errorf("error: got %q, want it to contain %q", msg, tc.text)
				}
				if id := resp.Header.Get("X-Keyhole-Request-Id"); id == "" || id != m["request_id"] {
					t.Errorf("X-Keyhole-Request-Id %q, body request_id %v: want the same", id, m["request_id"])
				}
			})
		}
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("keyhole dialed %d connections for refused CONNECTs, want none", n)
	}
	// One audit record per request inside, none for the CONNECTs.
	refused := func(r map[string]any) bool { return r["decision"] == "deny" && r["path"] == "/v1/x" }
	waitAuditCount(t, k, len(do)*len(cases), refused)
	if n, want := countAudit(t, k, refused), len(do)*len(cases); n != want {
		t.Errorf("got %d audit records of refused requests, want %d", n, want)
	}
	if n := countAudit(t, k, func(r map[string]any) bool { return r["method"] == "CONNECT" }); n != 0 {
		t.Errorf("got %d audit records for CONNECTs, want none", n)
	}
}

// nodeClient uses Node's https module through a CONNECT tunnel it opens
// itself (Node 20 honours no proxy variables).
type nodeClient struct{}

func (nodeClient) Name() string { return "node-https" }

const nodeScript = `
const http = require('http'), https = require('https'), tls = require('tls'), fs = require('fs');
const u = new URL(process.argv[process.argv.length - 1]);
const port = u.port || 443;
const [phost, pport] = process.env.KH_PROXY.split(':');
const c = http.request({host: phost, port: +pport, method: 'CONNECT', path: u.hostname + ':' + port});
c.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.error('CONNECT ' + res.statusCode); process.exit(2); }
  const agent = new https.Agent();
  agent.createConnection = () => tls.connect({socket, servername: u.hostname, ca: fs.readFileSync(process.env.KH_CA)});
  const r = https.request({host: u.hostname, port, path: u.pathname, method: 'GET', agent}, (resp) => {
    let body = '';
    resp.setEncoding('utf8');
    resp.on('data', (d) => body += d);
    resp.on('end', () => { console.log(JSON.stringify({status: resp.statusCode, headers: resp.headers, body})); process.exit(0); });
  });
  r.on('error', (e) => { console.error(String(e)); process.exit(3); });
  r.end();
});
c.on('error', (e) => { console.error(String(e)); process.exit(4); });
c.end();
`

func (nodeClient) Do(t *testing.T, k *keyhole, r request) response {
	t.Helper()
	need(t, "node", "--version")
	cmd := exec.Command("node", "-e", nodeScript, r.URL)
	cmd.Env = append(baseEnv(), "KH_PROXY="+k.Addr, "KH_CA="+k.CAFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	out, err := cmd.Output()
	if err != nil {
		return response{Err: "node: " + err.Error() + ": " + redact(stderr.String())}
	}
	return decodeResponse(t, "node", out)
}

// TestMethodOverrideIsRefused checks, through every client, that a
// method-override header cannot take a secret limited to GET and POST to
// another method; nothing reaches the upstream.
func TestMethodOverrideIsRefused(t *testing.T) {
	w := newWorld(t, "")
	for _, cl := range clients(t) {
		for _, name := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"} {
			t.Run(cl.Name()+"/"+name, func(t *testing.T) {
				before := w.stripe.Hits()
				resp := cl.Do(t, w.k, request{URL: "https://api.stripe.test/v1/charges", Header: [][2]string{
					{"Authorization", "Bearer <<STRIPE>>"}, {name, "DELETE"}}})
				assertRefusal(t, resp, http.StatusForbidden, "method_not_allowed", "STRIPE")
				if w.stripe.Hits() != before {
					t.Error("the upstream received the request")
				}
			})
		}
	}
	if resp := (goClient{}).Do(t, w.k, request{URL: "https://api.stripe.test/v1/charges", Header: [][2]string{
		{"Authorization", "Bearer <<STRIPE>>"}, {"X-HTTP-Method-Override", "POST"}}}); resp.Status != http.StatusOK {
		t.Errorf("an allowed override: got %d, want 200", resp.Status)
	}
}

// TestPortRefusalNamesThePort checks that a port no rule names is refused
// with a message that names the port and what would allow it, under
// default: allow, in a tunnel and over plain HTTP.
func TestPortRefusalNamesThePort(t *testing.T) {
	w := newWorld(t, "")
	for _, tc := range []struct{ url, hostport string }{
		{"https://api.stripe.test:8443/v1/x", "api.stripe.test:8443"},
		{"http://plain.test:8080/x", "plain.test:8080"},
	} {
		t.Run(tc.hostport, func(t *testing.T) {
			resp := goClient{}.Do(t, w.k, request{URL: tc.url})
			assertRefusal(t, resp, http.StatusForbidden, "egress_denied", "")
			msg, _ := resp.refusal(t)["error"].(string)
			_, port, _ := net.SplitHostPort(tc.hostport)
			for _, want := range []string{"port " + port, "add " + tc.hostport + " to a secret's hosts or to egress.allow"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error: got %q, want it to contain %q", msg, want)
				}
			}
		})
	}
}

// TestPlainProxyAuthRequiredHasChallenge checks that a plain-HTTP 407
// carries Proxy-Authenticate, like the CONNECT one.
func TestPlainProxyAuthRequiredHasChallenge(t *testing.T) {
	w := newAgentWorld(t)
	c := dialPlain(t, w.k)
	c.send(rawReq("GET http://plain.test/x HTTP/1.1", "Host: plain.test"))
	resp, _ := c.expect(http.MethodGet, http.StatusProxyAuthRequired, "proxy_auth_required")
	if got := resp.Header.Get("Proxy-Authenticate"); got != `Basic realm="keyhole"` {
		t.Errorf("Proxy-Authenticate: got %q, want Basic realm=\"keyhole\"", got)
	}
	// curl answers the challenge with the credentials it was given.
	need(t, "curl")
	cmd := exec.Command("curl", "-sS", "--proxy", "http://"+w.k.Addr, "--proxy-anyauth", "--proxy-user", "billing:"+billingToken,
		"-o", "/dev/null", "-w", "%{http_code}", "http://plain.test/x")
	cmd.Env = baseEnv()
	if out, err := cmd.Output(); err != nil || string(out) != "200" {
		t.Errorf("curl --proxy-anyauth: got %s (%v), want 200", out, err)
	}
}

// TestUpstreamHangupDuringHandshake checks that an upstream that accepts
// the connection and closes it during the TLS handshake is upstream_tls,
// as the README says.
func TestUpstreamHangupDuringHandshake(t *testing.T) {
	ln := listenLoopback(t)
	serveConns(t, ln, func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Read(make([]byte, 512)) // part of the ClientHello
		c.Close()
	})
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [hangup.test]
resolve:
  hangup.test: %s
`, ln.Addr()))
	for _, cl := range clients(t) {
		t.Run(cl.Name(), func(t *testing.T) {
			resp := cl.Do(t, k, request{URL: "https://hangup.test/x", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
			assertRefusal(t, resp, http.StatusBadGateway, "upstream_tls", "")
		})
	}
}
