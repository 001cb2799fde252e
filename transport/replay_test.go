package transport

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// A GET (which may be sent again) on a pooled connection the upstream
// closed while it idled is not checked before use: it fails before any
// response byte and goes out once more on a fresh connection, which is the
// only one the upstream sees it on. A POST is still checked first (see
// TestServerClosesIdleConnection).
func TestReplayableSkipsPeekAndRetries(t *testing.T) {
	var requests atomic.Int64
	u := startUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		exchangeHandler(w, r)
	}, Config{})
	u.do(t, "GET", "/get", nil)
	waitFor(t, "the server's connection to idle", func() bool { return u.idled.Load() == 1 })
	u.srv.CloseClientConnections()
	waitFor(t, "the pooled connection to see the close", func() bool {
		u.tr.mu.Lock()
		defer u.tr.mu.Unlock()
		for _, l := range u.tr.idle {
			return !l[0].alive()
		}
		return false
	})
	// Unchecked, the dead connection is what the pool hands out.
	host := strings.TrimPrefix(u.url, "https://")
	c := u.tr.idleConn(host, false)
	if c == nil {
		t.Fatal("idleConn without the check: got no connection, want the dead one")
	}
	u.tr.put(c)
	if _, body := u.do(t, "GET", "/get", nil, "Authorization", "Bearer sk_replay_SECRET"); body != "hello" {
		t.Fatalf("got %q, want hello", body)
	}
	if got := u.dials.Load(); got != 2 {
		t.Fatalf("dials: got %d, want 2", got)
	}
	if got := requests.Load(); got != 2 {
		t.Fatalf("requests the upstream saw: got %d, want 2 (the second once, on the new connection)", got)
	}
}

// A reused connection on which the upstream began its answer, then broke
// off, is never retried: the upstream has acted on the request.
func TestAnsweredRequestNotRetried(t *testing.T) {
	u, requests := startBreaksSecond(t, func(w http.ResponseWriter) {
		c, bw, _ := w.(http.Hijacker).Hijack()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Le")
		bw.Flush()
		c.Close()
	})
	u.do(t, "GET", "/", nil)
	req, _ := http.NewRequest("GET", u.url+"/", nil)
	req.Header.Set("Authorization", "Bearer sk_replay_SECRET")
	resp, err := u.tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("got a response, want the broken answer's error")
	}
	if strings.Contains(err.Error(), "sk_replay_SECRET") {
		t.Fatal("the error contains the request's secret")
	}
	if got := requests.Load(); got != 2 {
		t.Fatalf("requests the upstream saw: got %d, want 2 (no retry)", got)
	}
	if got := u.dials.Load(); got != 1 {
		t.Fatalf("dials: got %d, want 1", got)
	}
}
