package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"keyhole/rules"
	"keyhole/tokens"
)

// dialH2 opens a tunnel to target through tp and speaks HTTP/2 in it.
// header is added to the CONNECT (Proxy-Authorization, for one).
func dialH2(t testing.TB, tp *testProxy, target string, header ...string) *http2.ClientConn {
	t.Helper()
	tc := dialTunnel(t, tp, target, []string{"h2"}, header...)
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN got %q, want h2", p)
	}
	cc, err := (&http2.Transport{}).NewClientConn(tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialTunnel opens a tunnel to target through tp and completes a TLS
// handshake in it offering protos.
func dialTunnel(t testing.TB, tp *testProxy, target string, protos []string, header ...string) *tls.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", tp.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: got %d, want 200", resp.StatusCode)
	}
	host, _, _ := net.SplitHostPort(target)
	tc := tls.Client(c, &tls.Config{RootCAs: tp.caPool, ServerName: host, NextProtos: protos})
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc
}

func h2Get(t testing.TB, cc *http2.ClientConn, rawURL string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// auditLines returns the audit records written so far.
func (tp *testProxy) auditLines(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(tp.auditBuf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestH2TunnelInjectsScrubsAndAudits(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	target := "api.example.test:443"
	cc := dialH2(t, tp, target)
	resp, body := h2Get(t, cc, "https://"+target+"/v1/x", "Authorization", "Bearer <<KEY>>")
	if resp.ProtoMajor != 2 {
		t.Fatalf("got %s, want HTTP/2", resp.Proto)
	}
	if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+proxyTestSecret {
		t.Fatal("upstream did not get the injected secret")
	}
	if strings.Contains(body, proxyTestSecret) || resp.Header.Get("X-Echo") != "Bearer <<KEY>>" {
		t.Fatalf("response not scrubbed: body %q", strings.ReplaceAll(body, proxyTestSecret, "SECRET"))
	}
	recs := tp.auditLines(t)
	last := recs[len(recs)-1]
	if last["proto"] != "h2" || last["decision"] != "allow" || last["path"] != "/v1/x" {
		t.Fatalf("audit record: got %v, want proto h2, allow, /v1/x", last)
	}
}

// A stream whose :authority is not the CONNECT target is refused on that
// stream; the connection carries on.
func TestH2AuthorityPinnedPerStream(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	port := "443"
	target := "api.example.test:" + port
	cc := dialH2(t, tp, target)
	cases := []struct {
		name, url, reason string
		status            int
	}{
		{"other host", "https://evil.example.test:" + port + "/", "host_mismatch", http.StatusForbidden},
		{"other port", "https://api.example.test:8443/", "host_mismatch", http.StatusForbidden},
		{"the target", "https://" + target + "/ok", "", http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h2Get(t, cc, tc.url, "Authorization", "Bearer <<KEY>>")
			if resp.StatusCode != tc.status || resp.Header.Get("X-Keyhole-Reason") != tc.reason {
				t.Fatalf("got %d %q (%s), want %d %q", resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), body, tc.status, tc.reason)
			}
		})
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream hits: got %d, want 1", up.hits.Load())
	}
}

// The tunnel's credentials are checked again on every stream: a rules
// reload that removes the agent refuses the next stream of an open tunnel.
func TestH2StreamsRecheckCredentials(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	t.Setenv("PROXY_TEST_TOKEN", "tok-123456789012")
	rulesWith := func(agent string) string {
		return fmt.Sprintf(`
secrets:
  KEY: {source: env:PROXY_TEST_KEY, hosts: [api.example.test]}
agents:
  %s: {token: env:PROXY_TEST_TOKEN}
resolve:
  api.example.test: UPSTREAM
`, agent)
	}
	tp := startTestProxy(t, up, rulesWith("billing"), Config{})
	target := "api.example.test:443"
	auth := "Basic " + basic("billing", "tok-123456789012")
	cc := dialH2(t, tp, target, "Proxy-Authorization", auth)
	if resp, _ := h2Get(t, cc, "https://"+target+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first stream: got %d, want 200", resp.StatusCode)
	}
	set := mustParse(t, strings.ReplaceAll(rulesWith("other"), "UPSTREAM", up.Listener.Addr().String()))
	tp.SetRules(set)
	resp, _ := h2Get(t, cc, "https://"+target+"/")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("after reload: got %d, want 407", resp.StatusCode)
	}
}

// Many concurrent streams on one tunnel each get their own exchange.
func TestH2ConcurrentStreams(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.URL.Path, r.Header.Get("Authorization"))
	})
	tp := startKeyProxy(t, up, nil, Config{})
	target := "api.example.test:443"
	cc := dialH2(t, tp, target)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/s%d", i)
			req, _ := http.NewRequest(http.MethodGet, "https://"+target+path, nil)
			req.Header.Set("Authorization", "Bearer <<KEY>>")
			resp, err := cc.RoundTrip(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != path+" Bearer <<KEY>>" {
				errs <- "stream " + path + " got a wrong or unscrubbed body"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// A client that offers only http/1.0, or no ALPN, gets the HTTP/1 loop.
func TestTunnelALPNFallsBackToHTTP1(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	target := "api.example.test:443"
	for _, protos := range [][]string{{"http/1.0"}, nil, {"http/1.1"}} {
		t.Run(fmt.Sprint(protos), func(t *testing.T) {
			tc := dialTunnel(t, tp, target, protos)
			fmt.Fprintf(tc, "GET /h1 HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer <<KEY>>\r\n\r\n", target)
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != "auth=Bearer <<KEY>>" {
				t.Fatalf("got %d, want 200 and a scrubbed echo", resp.StatusCode)
			}
		})
	}
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func mustParse(t testing.TB, yaml string) *rules.Set {
	t.Helper()
	set, err := rules.Parse(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// A minted token revoked, or expired, while an h2 tunnel is open refuses
// the next stream of that tunnel.
func TestH2StreamsRecheckTokenLiveness(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	t.Setenv("PROXY_TEST_TOKEN", "tok-123456789012")
	tp := startTestProxy(t, up, `
secrets:
  KEY: {source: env:PROXY_TEST_KEY, hosts: [api.example.test]}
agents:
  billing: {token: env:PROXY_TEST_TOKEN}
resolve:
  api.example.test: UPSTREAM
`, Config{})
	key, err := tokens.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	revoked, err := tokens.OpenRevocations(state)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go revoked.Watch(ctx, 20*time.Millisecond, nil)
	tp.tokens = &Tokens{Key: key, Revoked: revoked} // before any request
	// The token watch would end the tunnel (TestRevokedTokenEndsOpenStreams)
	// and race the per-stream check this test is about: keep it from
	// starting.
	tp.tokenWatch.mu.Lock()
	tp.tokenWatch.running = true
	tp.tokenWatch.mu.Unlock()
	cases := []struct {
		name, reason string
		ttl          time.Duration
		end          func(id string)
	}{
		{"revoked", "token_revoked", time.Hour, func(id string) {
			if _, err := tokens.Revoke(state, id, time.Now()); err != nil {
				t.Fatal(err)
			}
		}},
		{"expired", "token_expired", 1500 * time.Millisecond, func(string) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "job-" + tc.name
			tok, err := tokens.Mint(key, "billing", id, tokens.Restriction{TTL: tc.ttl}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cc := dialH2(t, tp, "api.example.test:443", "Proxy-Authorization", "Basic "+basic("billing", tok))
			if resp, _ := h2Get(t, cc, "https://api.example.test/"); resp.StatusCode != http.StatusOK {
				t.Fatalf("first stream: got %d, want 200", resp.StatusCode)
			}
			tc.end(id)
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, _ := h2Get(t, cc, "https://api.example.test/")
				if resp.StatusCode == http.StatusProxyAuthRequired && resp.Header.Get("X-Keyhole-Reason") == tc.reason {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("got %d %q, want 407 %s", resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"), tc.reason)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
