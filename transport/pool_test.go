package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A connection is reused only when its response allowed it and was read
// to the end: a body closed early, "Connection: close" from the server or
// from the request, each end their connection.
func TestConnectionNotReused(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		readAll   bool
		closeReq  bool
		wantDials int64
	}{
		{name: "read to the end", path: "/get", readAll: true, wantDials: 1},
		{name: "closed before the end", path: "/long", wantDials: 2},
		{name: "server says close", path: "/close", readAll: true, wantDials: 2},
		{name: "request says close", path: "/get", readAll: true, closeReq: true, wantDials: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := startUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/long":
					w.Write([]byte(strings.Repeat("y", 1<<20)))
				case "/close":
					w.Header().Set("Connection", "close")
					fallthrough
				default:
					fmt.Fprint(w, "hello")
				}
			}, Config{})
			req, _ := http.NewRequest("GET", u.url+tc.path, nil)
			req.Close = tc.closeReq
			resp, err := u.tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.readAll {
				io.Copy(io.Discard, resp.Body)
			} else {
				resp.Body.Read(make([]byte, 10))
			}
			resp.Body.Close()
			if _, err := resp.Body.Read(make([]byte, 1)); tc.readAll && err != io.EOF || !tc.readAll && !errors.Is(err, errBodyClosed) {
				t.Errorf("read after the end: got %v", err)
			}
			if _, body := u.do(t, "GET", "/get", nil); body != "hello" {
				t.Fatalf("second request: got %q, want hello", body)
			}
			if got := u.dials.Load(); got != tc.wantDials {
				t.Fatalf("dials: got %d, want %d", got, tc.wantDials)
			}
		})
	}
}

// A pooled connection the upstream closed while it idled is noticed
// before it is used: a request that could not be sent again (a POST)
// goes out on a fresh connection.
func TestServerClosesIdleConnection(t *testing.T) {
	u := startUpstream(t, false, exchangeHandler, Config{})
	u.do(t, "GET", "/get", nil)
	waitFor(t, "the server's connection to idle", func() bool { return u.idled.Load() == 1 })
	u.srv.Config.SetKeepAlivesEnabled(false) // closes the idle connection
	u.srv.Config.SetKeepAlivesEnabled(true)
	waitFor(t, "the pooled connection to see the close", func() bool {
		u.tr.mu.Lock()
		defer u.tr.mu.Unlock()
		for _, l := range u.tr.idle {
			return !l[0].alive()
		}
		return false
	})
	if _, body := u.do(t, "POST", "/echo", strings.NewReader("payload")); !strings.HasPrefix(body, "7 bytes") {
		t.Fatalf("got %q, want the echo of 7 bytes", body)
	}
	if got := u.dials.Load(); got != 2 {
		t.Fatalf("dials: got %d, want 2", got)
	}
}

// A pooled connection that dies under a request, before any of the
// response, is retried once on a fresh connection when net/http's rules
// allow (an idempotent request); a POST is not sent again.
func TestDeadConnectionRetry(t *testing.T) {
	tests := []struct {
		method  string
		body    string
		wantErr bool
	}{
		{method: "GET"},
		{method: "HEAD"},
		{method: "POST", body: "payload", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			u, requests := startBreaksSecond(t, func(w http.ResponseWriter) {
				// The second request on a connection: it dies.
				c, _, _ := w.(http.Hijacker).Hijack()
				c.Close()
			})
			u.do(t, "GET", "/", nil)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, u.url+"/", body)
			resp, err := u.tr.RoundTrip(req)
			if tc.wantErr {
				if err == nil {
					t.Fatal("got no error, want the dead connection's")
				}
				if got := requests.Load(); got != 2 {
					t.Fatalf("requests the upstream saw: got %d, want 2 (no retry)", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || u.dials.Load() != 2 || requests.Load() != 3 {
				t.Fatalf("got status %d after %d dials and %d requests, want 200, 2 and 3", resp.StatusCode, u.dials.Load(), requests.Load())
			}
		})
	}
}

// CloseIdleConnections closes the idle connections, and one in use then
// is not pooled when its request ends.
func TestCloseIdleConnections(t *testing.T) {
	u := startUpstream(t, false, exchangeHandler, Config{})
	u.do(t, "GET", "/get", nil)
	req, _ := http.NewRequest("GET", u.url+"/get", nil)
	resp, err := u.tr.RoundTrip(req) // on the pooled connection
	if err != nil {
		t.Fatal(err)
	}
	u.tr.CloseIdleConnections()
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got := u.tr.idleCount(); got != 0 {
		t.Fatalf("idle connections: got %d, want 0", got)
	}
	u.do(t, "GET", "/get", nil)
	if got := u.dials.Load(); got != 2 {
		t.Fatalf("dials: got %d, want 2", got)
	}
}

// The idle pool is bounded per host, and idle connections
// close after the idle timeout.
func TestIdleBounds(t *testing.T) {
	u := startUpstream(t, false, exchangeHandler, Config{MaxIdleConnsPerHost: 2, IdleConnTimeout: 50 * time.Millisecond})
	var resps []*http.Response
	for range 4 {
		req, _ := http.NewRequest("GET", u.url+"/get", nil)
		resp, err := u.tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, resp := range resps {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := u.tr.idleCount(); got != 2 {
		t.Fatalf("idle connections: got %d, want 2", got)
	}
	waitFor(t, "the idle timeout", func() bool { return u.tr.idleCount() == 0 })
}

// A burst of requests to a new HTTP/2 upstream shares the one connection
// the first of them dialed.
func TestH2BurstSharesOneConnection(t *testing.T) {
	u := startUpstream(t, true, exchangeHandler, Config{})
	const n = 50
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			req, _ := http.NewRequest("GET", u.url+"/get", nil)
			resp, err := u.tr.RoundTrip(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if d, a := u.dials.Load(), u.accepted.Load(); d != 1 || a != 1 {
		t.Fatalf("connections: dialed %d, accepted %d; want 1 and 1", d, a)
	}
}

// Bytes past a response's declared length are reported (never shown)
// and end the connection: those that came with the header, and those in
// the TLS record that ends a body too large to have (which reads the
// connection straight into the caller's buffer, see lengthBody).
func TestUnsolicitedBytes(t *testing.T) {
	for _, size := range []int{2, 100 << 10} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			want := strings.Repeat("k", size)
			var told atomic.Int64
			u := startUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				c, rw, _ := w.(http.Hijacker).Hijack()
				defer c.Close()
				fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%sSTRAY", size, want)
				rw.Flush()
				io.Copy(io.Discard, c) // until the client closes
			}, Config{OnUnsolicited: func(string) { told.Add(1) }})
			if _, body := u.do(t, "GET", "/", nil); body != want {
				t.Fatalf("body: got %d bytes, want %d of %q", len(body), size, "k")
			}
			if told.Load() != 1 || u.tr.idleCount() != 0 {
				t.Fatalf("told %d times, %d idle connections; want 1 and 0", told.Load(), u.tr.idleCount())
			}
		})
	}
}

// A body that ends before its Content-Length fails with
// io.ErrUnexpectedEOF, whether its end came with the header or later.
func TestShortBody(t *testing.T) {
	for _, sent := range []int{2, 100 << 10} {
		t.Run(strconv.Itoa(sent), func(t *testing.T) {
			u := startUpstream(t, false, func(w http.ResponseWriter, r *http.Request) {
				c, rw, _ := w.(http.Hijacker).Hijack()
				fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 2*sent, strings.Repeat("k", sent))
				rw.Flush()
				c.Close()
			}, Config{})
			req, _ := http.NewRequest("GET", u.url+"/", nil)
			resp, err := u.tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if len(b) != sent || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("body: got %d bytes and %v, want %d and %v", len(b), err, sent, io.ErrUnexpectedEOF)
			}
			if got := u.tr.idleCount(); got != 0 {
				t.Fatalf("idle connections: got %d, want 0", got)
			}
		})
	}
}

// Idle connections the upstream closed are closed within a sweep, without
// a request to find them dead.
func TestSweepClosesDeadIdleConnections(t *testing.T) {
	u := startUpstream(t, false, exchangeHandler, Config{})
	u.do(t, "GET", "/get", nil)
	if got := u.tr.idleCount(); got != 1 {
		t.Fatalf("idle connections: got %d, want 1", got)
	}
	waitFor(t, "the server's connection to idle", func() bool { return u.idled.Load() == 1 })
	u.srv.CloseClientConnections()
	waitFor(t, "the sweep", func() bool { return u.tr.idleCount() == 0 })
	u.tr.mu.Lock()
	sweeping := u.tr.sweeping
	u.tr.mu.Unlock()
	if sweeping {
		waitFor(t, "the sweep to end", func() bool {
			u.tr.mu.Lock()
			defer u.tr.mu.Unlock()
			return !u.tr.sweeping
		})
	}
}
