package proxy

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A GET whose pooled upstream connection the upstream closed while it
// idled is sent again on a fresh connection (the transport no longer
// checks the connection first): the agent gets its answer, the upstream
// sees the request once, and the injected secret reaches no log line and
// no audit record on that path.
func TestReplayOnUpstreamClosedIdle(t *testing.T) {
	var idled atomic.Int64
	up := startUpstream(t, []string{"api.example.test"}, nil, func(s *httptest.Server) {
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateIdle {
				idled.Add(1)
			}
		}
	})
	t.Setenv("PROXY_REPLAY_KEY", proxyTestSecret)
	logs := newLockedBuffer()
	tp := startTestProxyWith(t, up, `
secrets:
  KEY:
    source: env:PROXY_REPLAY_KEY
    hosts: [api.example.test]
resolve:
  api.example.test: UPSTREAM
`, Config{}, func(d *Deps) {
		d.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := tp.client()
	if resp, body := get(t, c, "https://api.example.test/a", "Authorization", "Bearer <<KEY>>"); resp.StatusCode != 200 || up.last.Load().Header.Get("Authorization") != "Bearer "+proxyTestSecret || strings.Contains(body, proxyTestSecret) {
		t.Fatalf("first request: status %d, body of %d bytes", resp.StatusCode, len(body))
	}
	waitFor(t, "the upstream connection to idle", func() bool { return idled.Load() >= 1 })
	up.CloseClientConnections()
	// Let the close reach the pooled connection (were it late, the
	// connection would still be alive and the test pass without a retry;
	// on loopback it is there within microseconds).
	time.Sleep(50 * time.Millisecond)
	hits := up.hits.Load()
	resp, body := get(t, c, "https://api.example.test/b", "Authorization", "Bearer <<KEY>>")
	if resp.StatusCode != 200 || up.last.Load().Header.Get("Authorization") != "Bearer "+proxyTestSecret || strings.Contains(body, proxyTestSecret) {
		t.Fatalf("request on the closed connection: status %d, body of %d bytes; want 200, the secret injected and scrubbed from the body", resp.StatusCode, len(body))
	}
	if got := up.hits.Load() - hits; got != 1 {
		t.Fatalf("the upstream saw the request %d times, want once", got)
	}
	for name, s := range map[string]string{"a log line": logs.String(), "an audit record": tp.auditBuf.String()} {
		if strings.Contains(s, proxyTestSecret) {
			t.Fatalf("%s contains the secret", name)
		}
	}
}
