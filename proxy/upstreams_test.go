package proxy

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// startH2Upstream runs an upstream that offers h2 and counts the
// connections it accepts.
func startH2Upstream(t *testing.T, h http.HandlerFunc) (*testUpstream, *atomic.Int64) {
	var conns atomic.Int64
	up := startUpstream(t, []string{"api.example.test"}, h, func(s *httptest.Server) {
		s.EnableHTTP2 = true
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
	})
	return up, &conns
}

// Two agents never share an upstream connection that carried a secret,
// while one agent's requests reuse its own; the upstream speaks HTTP/2.
func TestUpstreamConnectionsNotSharedAcrossAgents(t *testing.T) {
	var protos atomic.Value
	up, conns := startH2Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto)
		fmt.Fprint(w, "ok")
	})
	t.Setenv("PROXY_TEST_KEY", proxyTestSecret)
	t.Setenv("TOKEN_A", "tok-aaaaaaaaaaaa")
	t.Setenv("TOKEN_B", "tok-bbbbbbbbbbbb")
	tp := startTestProxy(t, up, `
secrets:
  KEY: {source: env:PROXY_TEST_KEY, hosts: [api.example.test]}
agents:
  a: {token: env:TOKEN_A, secrets: [KEY]}
  b: {token: env:TOKEN_B, secrets: [KEY]}
resolve:
  api.example.test: UPSTREAM
`, Config{})
	target := "api.example.test:443"
	send := func(agent, token string) {
		cc := dialH2(t, tp, target, "Proxy-Authorization", "Basic "+basic(agent, token))
		resp, _ := h2Get(t, cc, "https://"+target+"/", "Authorization", "Bearer <<KEY>>")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("agent %s: got %d, want 200", agent, resp.StatusCode)
		}
	}
	send("a", "tok-aaaaaaaaaaaa")
	send("b", "tok-bbbbbbbbbbbb")
	send("a", "tok-aaaaaaaaaaaa")
	send("b", "tok-bbbbbbbbbbbb")
	if got := conns.Load(); got != 2 {
		t.Fatalf("upstream connections: got %d, want 2 (one per agent)", got)
	}
	if p := protos.Load(); p != "HTTP/2.0" {
		t.Fatalf("upstream protocol: got %v, want HTTP/2.0", p)
	}
}

// readRecorder keeps what the upstream reads: the proxy's HTTP/2 frames.
type readRecorder struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *readRecorder) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// The HPACK state of a connection that carries a secret never holds a
// header field: every header block the upstream receives decodes with a
// fresh decoder, so no later request can reference (or probe) an earlier
// one's credentials.
func TestAgentTransportIndexesNoHeader(t *testing.T) {
	var rec atomic.Pointer[readRecorder]
	up := startUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}, func(s *httptest.Server) {
		s.EnableHTTP2 = true
		s.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
			"h2": func(srv *http.Server, c *tls.Conn, h http.Handler) {
				rc := &readRecorder{Conn: c}
				rec.Store(rc)
				(&http2.Server{}).ServeConn(rc, &http2.ServeConnOpts{Handler: h, BaseConfig: srv})
			},
		}
	})
	tp := startKeyProxy(t, up, nil, Config{})
	target := "api.example.test:443"
	cc := dialH2(t, tp, target)
	for range 3 {
		if resp, _ := h2Get(t, cc, "https://"+target+"/same", "Authorization", "Bearer <<KEY>>", "X-Other", "same-every-time"); resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d, want 200", resp.StatusCode)
		}
	}
	rc := rec.Load()
	if rc == nil {
		t.Fatal("the upstream never spoke HTTP/2")
	}
	rc.mu.Lock()
	raw := bytes.Clone(rc.buf.Bytes())
	rc.mu.Unlock()
	raw = bytes.TrimPrefix(raw, []byte(http2.ClientPreface))
	fr := http2.NewFramer(io.Discard, bytes.NewReader(raw))
	blocks, secrets := 0, 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		hf, ok := f.(*http2.HeadersFrame)
		if !ok {
			continue
		}
		blocks++
		dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
			if f.Name == "authorization" && f.Value == "Bearer "+proxyTestSecret {
				secrets++
			}
		})
		if _, err := dec.Write(hf.HeaderBlockFragment()); err != nil {
			t.Fatalf("header block %d refers to the HPACK table: %v", blocks, err)
		}
	}
	if blocks != 3 || secrets != 3 {
		t.Fatalf("got %d header blocks with %d injected credentials, want 3 and 3", blocks, secrets)
	}
}

// Trailers pass both ways over HTTP/2: a declared request trailer reaches
// the upstream, the upstream's trailers reach the agent, scrubbed.
func TestH2TrailersBothWays(t *testing.T) {
	up, _ := startH2Upstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Resp-Trailer, X-Echo-Trailer")
		fmt.Fprint(w, "body")
		w.Header().Set("X-Resp-Trailer", "got "+r.Trailer.Get("X-Req-Trailer"))
		w.Header().Set("X-Echo-Trailer", r.Header.Get("Authorization"))
	})
	tp := startKeyProxy(t, up, nil, Config{})
	cc := dialH2(t, tp, "api.example.test:443")
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.test/t", strings.NewReader("payload"))
	req.Header.Set("Authorization", "Bearer <<KEY>>")
	req.Trailer = http.Header{"X-Req-Trailer": {"tv"}}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body" || resp.Trailer.Get("X-Resp-Trailer") != "got tv" {
		t.Fatalf("got body %q, trailer X-Resp-Trailer %q; want body and \"got tv\"", b, resp.Trailer.Get("X-Resp-Trailer"))
	}
	if got := resp.Trailer.Get("X-Echo-Trailer"); got != "Bearer <<KEY>>" {
		t.Fatal("a response trailer was not scrubbed to the placeholder")
	}
}
