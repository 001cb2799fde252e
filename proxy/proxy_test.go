package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/inject"
	"keyhole/rules"
)

// testUpstream is a TLS server for names, signed by a CA the proxy under
// test trusts through Config.UpstreamCAFile.
type testUpstream struct {
	*httptest.Server
	caFile string
	hits   atomic.Int64
	last   atomic.Pointer[http.Request]
}

func startTestUpstream(t testing.TB, names []string, h http.HandlerFunc) *testUpstream {
	t.Helper()
	return startUpstream(t, names, h, nil)
}

// startUpstream is startTestUpstream; configure, when not nil, sets up the
// server before it starts.
func startUpstream(t testing.TB, names []string, h http.HandlerFunc, configure func(*httptest.Server)) *testUpstream {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "proxy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	u := &testUpstream{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	os.WriteFile(u.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Echo", r.Header.Get("Authorization"))
			fmt.Fprintf(w, "auth=%s", r.Header.Get("Authorization"))
		}
	}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.last.Store(r.Clone(context.Background()))
		h(w, r)
	}))
	u.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	if configure != nil {
		configure(u.Server)
	}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

// testProxy is a Proxy serving on a loopback listener.
type testProxy struct {
	*Proxy
	addr      string
	authority *certs.Authority
	auditBuf  *lockedBuffer
	caPool    *x509.CertPool
	shutdown  context.CancelFunc // ends Serve, as a signal does
}

type lockedBuffer struct {
	mu  chan struct{}
	buf strings.Builder
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.buf.String()
}

// startTestProxy runs a proxy on rulesYAML (with %s replaced by the
// upstream's address when up is not nil).
func startTestProxy(t testing.TB, up *testUpstream, rulesYAML string, cfg Config) *testProxy {
	t.Helper()
	return startTestProxyWith(t, up, rulesYAML, cfg, nil)
}

// startTestProxyWith is startTestProxy; with, when not nil, completes the
// proxy's dependencies.
func startTestProxyWith(t testing.TB, up *testUpstream, rulesYAML string, cfg Config, with func(*Deps)) *testProxy {
	t.Helper()
	if up != nil {
		rulesYAML = strings.ReplaceAll(rulesYAML, "UPSTREAM", up.Listener.Addr().String())
		cfg.UpstreamCAFile = up.caFile
	}
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	authority, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	buf := newLockedBuffer()
	deps := Deps{Rules: set, Authority: authority, Audit: audit.New(buf)}
	if with != nil {
		with(&deps)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	pool := x509.NewCertPool()
	pool.AddCert(authority.Certificate())
	return &testProxy{Proxy: p, addr: ln.Addr().String(), authority: authority, auditBuf: buf, caPool: pool, shutdown: cancel}
}

// client returns an http.Client using the proxy; each call makes a new
// transport (so a new tunnel).
func (tp *testProxy) client() *http.Client {
	u, _ := url.Parse("http://" + tp.addr)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: tp.caPool},
		MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

const proxyTestSecret = "sk_test_PROXYunitSECRET_0123456789"

// startKeyProxy runs a proxy whose one secret, KEY (proxyTestSecret), may
// go to api.example.test; with plain not nil, also to plain.example.test
// over plain HTTP, served by plain.
func startKeyProxy(t *testing.T, up *testUpstream, plain *httptest.Server, cfg Config) *testProxy {
	t.Helper()
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	hosts, resolve := "[api.example.test]", ""
	if plain != nil {
		hosts = "[api.example.test, plain.example.test]\n    allow_plaintext: true"
		resolve = "\n  plain.example.test: " + plain.Listener.Addr().String()
	}
	return startTestProxy(t, up, fmt.Sprintf(`
secrets:
  KEY:
    source: env:PROXY_TEST_KEY
    hosts: %s
resolve:
  api.example.test: UPSTREAM%s
`, hosts, resolve), cfg)
}

func TestLeafComesFromCacheAfterFirstConnect(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startTestProxy(t, up, "resolve:\n  api.example.test: UPSTREAM\n", Config{})
	for i := 0; i < 5; i++ {
		resp, _ := get(t, tp.client(), "https://api.example.test/")
		if resp.StatusCode != 200 {
			t.Fatalf("got %d", resp.StatusCode)
		}
	}
	hits, misses := tp.authority.CacheStats()
	if misses != 1 || hits != 4 {
		t.Fatalf("five tunnels to one host: got %d mints and %d cache hits, want 1 and 4", misses, hits)
	}
}

func TestRequestPathReadsNoSource(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "key")
	os.WriteFile(src, []byte(proxyTestSecret+"\n"), 0o600)
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startTestProxy(t, up, fmt.Sprintf(`
secrets:
  KEY:
    source: file:%s
    hosts: [api.example.test]
resolve:
  api.example.test: UPSTREAM
`, src), Config{})
	// The value was read at load: removing the file changes nothing until
	// a reload (which this proxy, without a watcher, never does).
	os.Remove(src)
	_, body := get(t, tp.client(), "https://api.example.test/", "Authorization", "Bearer <<KEY>>")
	if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+proxyTestSecret {
		t.Fatal("the upstream did not get the value read at load")
	}
	if body != "auth=Bearer <<KEY>>" {
		t.Errorf("got body %q", body)
	}
}

func TestTunnelRoundTripIsIdempotent(t *testing.T) {
	// goproxy may hand the same request to the round tripper again; the
	// decision and the swap must not depend on what an earlier call did.
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	tun := &tunnel{p: tp.Proxy, caller: mustAnonymous(t, tp.Proxy), dest: destination{host: "api.example.test", port: 443}}
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/x", nil)
	req.Header.Set("Authorization", "Bearer <<KEY>>")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	for i := 0; i < 2; i++ {
		resp := tun.exchange(req)
		if resp.StatusCode != 200 {
			t.Fatalf("round trip %d: %v", i, resp.StatusCode)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "auth=Bearer <<KEY>>" {
			t.Errorf("round trip %d: got body %q", i, b)
		}
		if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+proxyTestSecret {
			t.Errorf("round trip %d: upstream did not get the secret", i)
		}
		if up.last.Load().Header.Get("Proxy-Authorization") != "" {
			t.Errorf("round trip %d: Proxy-Authorization went upstream", i)
		}
	}
	if req.Header.Get("Authorization") != "Bearer <<KEY>>" {
		t.Error("the agent's request was modified: it now holds something else than the placeholder")
	}
	records := strings.Count(tp.auditBuf.String(), `"decision":"allow"`)
	if records != 2 {
		t.Errorf("got %d audit records, want one per round trip", records)
	}
}

func mustAnonymous(t *testing.T, p *Proxy) *caller {
	t.Helper()
	c, ref := p.authenticate(&http.Request{Header: http.Header{}}, p.policy.Load(), time.Now())
	if ref != nil {
		t.Fatal(ref)
	}
	return c
}

func TestRefusalResponse(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://x.test/", nil)
	cases := []struct {
		name   string
		err    error
		status int
		reason inject.Reason
	}{
		{"private address", &privateAddressError{host: "db.test"}, 403, inject.PrivateAddress},
		{"unreachable", io.ErrUnexpectedEOF, 502, inject.UpstreamUnreachable},
		{"timeout", context.DeadlineExceeded, 502, inject.UpstreamTimeout},
		{"unknown authority", x509.UnknownAuthorityError{}, 502, inject.UpstreamTLS},
		{"not tls", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, 502, inject.UpstreamTLS},
		{"remote alert", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, 502, inject.UpstreamTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := upstreamRefusal(tc.err, "x.test")
			if ref.Status() != tc.status || ref.Reason != tc.reason {
				t.Fatalf("got %d %s, want %d %s", ref.Status(), ref.Reason, tc.status, tc.reason)
			}
		})
	}
	resp := refusalResponse(req, upstreamRefusal(x509.UnknownAuthorityError{}, "x.test"), "id-1")
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body["reason"] != "upstream_tls" || body["request_id"] != "id-1" || body["host"] != "x.test" || !strings.HasPrefix(body["error"], "keyhole: ") {
		t.Errorf("got %v", body)
	}
	if resp.Header.Get("X-Keyhole-Reason") != "upstream_tls" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got headers %v", resp.Header)
	}
	auth := refusalResponse(req, inject.Refuse(inject.ProxyAuthRequired, "", "", "log in"), "id-2")
	if auth.StatusCode != 407 || auth.Header.Get("Proxy-Authenticate") != `Basic realm="keyhole"` {
		t.Errorf("407: got %d %q", auth.StatusCode, auth.Header.Get("Proxy-Authenticate"))
	}
}

// ticketCache is a tls.ClientSessionCache that counts the session tickets
// the client receives.
type ticketCache struct{ puts atomic.Int64 }

func (c *ticketCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *ticketCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
}

// Each tunnel has a TLS configuration of its own, whose session tickets no
// other tunnel could redeem: the proxy sends none rather than mint useless
// ones on every handshake.
func TestTunnelsSendNoSessionTickets(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startTestProxy(t, up, "resolve:\n  api.example.test: UPSTREAM\n", Config{})
	cache := &ticketCache{}
	u, _ := url.Parse("http://" + tp.addr)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u),
		TLSClientConfig: &tls.Config{RootCAs: tp.caPool, ClientSessionCache: cache}}}
	for range 2 {
		if resp, _ := get(t, c, "https://api.example.test/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
	}
	if n := cache.puts.Load(); n != 0 {
		t.Fatalf("the client received %d session tickets, want none", n)
	}
}

// Inside a tunnel keyhole, not goproxy, removes what must not travel
// upstream: hop-by-hop and proxy headers, and headers that Connection
// names.
func TestTunnelStripsHopByHopHeaders(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startTestProxy(t, up, "resolve:\n  api.example.test: UPSTREAM\n", Config{})
	resp, _ := get(t, tp.client(), "https://api.example.test/",
		"Proxy-Authorization", "Basic eDp5", "Proxy-Connection", "keep-alive",
		"Connection", "X-Hop", "X-Hop", "1", "Keep-Alive", "timeout=5", "Te", "trailers",
		"Proxy-Authenticate", "Basic", "X-Kept", "yes")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d", resp.StatusCode)
	}
	got := up.last.Load().Header
	for _, name := range []string{"Proxy-Authorization", "Proxy-Connection", "Connection", "X-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := got[name]; ok {
			t.Errorf("%s: %q went upstream", name, v)
		}
	}
	if got.Get("X-Kept") != "yes" {
		t.Errorf("an end-to-end header was lost: %v", got)
	}
}
