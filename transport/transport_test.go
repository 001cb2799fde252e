package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// exchangeHandler answers the requests of TestKeepAlive.
func exchangeHandler(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/get", "/head":
		fmt.Fprint(w, "hello")
	case "/204":
		w.WriteHeader(http.StatusNoContent)
	case "/304":
		w.WriteHeader(http.StatusNotModified)
	case "/103":
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		fmt.Fprint(w, "after early hints")
	case "/echo":
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d bytes %q te=%v trailer=%q", len(b), b[:min(len(b), 8)], r.TransferEncoding, r.Trailer.Get("X-Req"))
	case "/trailer":
		w.Header().Set("Trailer", "X-Resp")
		fmt.Fprint(w, "body")
		w.Header().Set("X-Resp", "trailer value")
	default:
		http.NotFound(w, r)
	}
}

// Every kind of exchange, in sequence, travels on the one connection it
// dialed, over HTTP/1.1 and over HTTP/2.
func TestKeepAlive(t *testing.T) {
	big := strings.Repeat("x", 3*smallBody)
	type result struct {
		status  int
		body    string
		trailer string
	}
	tests := []struct {
		name    string
		method  string
		path    string
		body    func() io.Reader
		trailer bool // send a request trailer
		want    result
		wantH1  string // body wanted over HTTP/1.1, where it differs
	}{
		{name: "get", method: "GET", path: "/get", want: result{200, "hello", ""}},
		{name: "head", method: "HEAD", path: "/head", want: result{200, "", ""}},
		{name: "204", method: "GET", path: "/204", want: result{204, "", ""}},
		{name: "304", method: "GET", path: "/304", want: result{304, "", ""}},
		{name: "1xx before the response", method: "GET", path: "/103", want: result{200, "after early hints", ""}},
		{name: "small body", method: "POST", path: "/echo", body: func() io.Reader { return strings.NewReader("payload") },
			want: result{200, `7 bytes "payload" te=[] trailer=""`, ""}},
		{name: "large body", method: "POST", path: "/echo", body: func() io.Reader { return strings.NewReader(big) },
			want: result{200, fmt.Sprintf(`%d bytes "xxxxxxxx" te=[] trailer=""`, len(big)), ""}},
		{name: "chunked body", method: "POST", path: "/echo",
			body: func() io.Reader { return &slowReader{chunks: []string{"chu", "nked", "!"}} },
			want: result{200, `8 bytes "chunked!" te=[] trailer=""`, ""}, wantH1: `8 bytes "chunked!" te=[chunked] trailer=""`},
		{name: "request trailer", method: "POST", path: "/echo", trailer: true,
			body: func() io.Reader { return &slowReader{chunks: []string{"abc"}} },
			want: result{200, `3 bytes "abc" te=[] trailer="tv"`, ""}, wantH1: `3 bytes "abc" te=[chunked] trailer="tv"`},
		{name: "response trailer", method: "GET", path: "/trailer", want: result{200, "body", "trailer value"}},
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			u := startUpstream(t, h2, exchangeHandler, Config{})
			for _, tc := range tests {
				var body io.Reader
				if tc.body != nil {
					body = tc.body()
				}
				req, _ := http.NewRequest(tc.method, u.url+tc.path, body)
				if tc.trailer {
					req.Trailer = http.Header{"X-Req": {"tv"}}
				}
				resp, err := u.tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("%s: body: %v", tc.name, err)
				}
				want := tc.want
				if !h2 && tc.wantH1 != "" {
					want.body = tc.wantH1
				}
				got := result{resp.StatusCode, string(b), resp.Trailer.Get("X-Resp")}
				if got != want {
					t.Errorf("%s: got %+v, want %+v", tc.name, got, want)
				}
				if wantProto := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantProto {
					t.Errorf("%s: protocol: got HTTP/%d, want HTTP/%d", tc.name, resp.ProtoMajor, wantProto)
				}
			}
			if d, a := u.dials.Load(), u.accepted.Load(); d != 1 || a != 1 {
				t.Fatalf("connections: dialed %d, accepted %d; want 1 and 1", d, a)
			}
		})
	}
}

// The response header is bounded in time and in size.
func TestResponseHeaderBounds(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			waitRelease(r, release)
		case "/huge":
			w.Header().Set("X-Huge", strings.Repeat("h", 64<<10))
		}
		fmt.Fprint(w, "ok")
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			u := startUpstream(t, h2, handler, Config{ResponseHeaderTimeout: 100 * time.Millisecond, MaxResponseHeaderBytes: 8 << 10})
			req, _ := http.NewRequest("GET", u.url+"/slow", nil)
			_, err := u.tr.RoundTrip(req)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("slow header: got %v, want a timeout", err)
			}
			req, _ = http.NewRequest("GET", u.url+"/huge", nil)
			if _, err := u.tr.RoundTrip(req); err == nil {
				t.Errorf("huge header: got no error")
			} else if !h2 && !strings.Contains(err.Error(), "exceeded 8192 bytes") {
				t.Errorf("huge header: got %v, want it exceeded 8192 bytes", err)
			}
		})
	}
}

// waitRelease waits for release, or the request's end.
func waitRelease(r *http.Request, release chan struct{}) {
	select {
	case <-release:
	case <-r.Context().Done():
	}
}

// The request's context ends the exchange wherever it is, closing the
// connection; the error says the context ended.
func TestCancellation(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	handler := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/header" {
			waitRelease(r, release)
		}
		fmt.Fprint(w, "first part")
		w.(http.Flusher).Flush()
		waitRelease(r, release)
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			u := startUpstream(t, h2, handler, Config{})

			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", u.url+"/header", nil)
			errc := make(chan error, 1)
			go func() {
				_, err := u.tr.RoundTrip(req)
				errc <- err
			}()
			waitFor(t, "the request to arrive", func() bool { return u.accepted.Load() == 1 })
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("canceled awaiting the header: got %v, want context.Canceled", err)
			}

			ctx, cancel = context.WithCancel(context.Background())
			defer cancel()
			req, _ = http.NewRequestWithContext(ctx, "GET", u.url+"/body", nil)
			resp, err := u.tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len("first part"))
			if _, err := io.ReadFull(resp.Body, buf); err != nil {
				t.Fatal(err)
			}
			cancel()
			if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
				t.Errorf("canceled mid-body: got %v, want context.Canceled", err)
			}
			resp.Body.Close()
			if got := u.tr.idleCount(); got != 0 {
				t.Errorf("idle connections after cancellation: got %d, want 0", got)
			}
		})
	}
}

// errAgentGone stands for the agent breaking off its request body.
var errAgentGone = errors.New("agent went away")

// brokenBody yields some bytes, then fails.
type brokenBody struct{ sent bool }

func (b *brokenBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "part of it"), nil
	}
	return 0, errAgentGone
}
func (b *brokenBody) Close() error { return nil }

// A request body that breaks while it streams fails the round trip with
// the body's own error, not an upstream's, and the connection is dropped.
func TestBrokenRequestBody(t *testing.T) {
	u := startUpstream(t, false, exchangeHandler, Config{})
	req, _ := http.NewRequest("POST", u.url+"/echo", &brokenBody{})
	if _, err := u.tr.RoundTrip(req); !errors.Is(err, errAgentGone) {
		t.Fatalf("got %v, want the body's error", err)
	}
	if got := u.tr.idleCount(); got != 0 {
		t.Fatalf("idle connections: got %d, want 0", got)
	}
}

// What the Transport does not send itself goes to the fallback; with none,
// it fails.
func TestFallback(t *testing.T) {
	var fallbacks int
	fb := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		fallbacks++
		return nil, errors.New("fallback dialed")
	}}
	tests := []struct {
		name   string
		url    string
		header []string
	}{
		{name: "100-continue", url: "https://example.test/", header: []string{"Expect", "100-continue"}},
		{name: "websocket", url: "https://example.test/", header: []string{"Connection", "Upgrade", "Upgrade", "websocket"}},
		{name: "plain http", url: "http://example.test/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []*http.Transport{fb, nil} {
				tr := New(Config{Fallback: f, DialTLS: func(context.Context, string) (net.Conn, error) {
					t.Fatal("dialed TLS itself")
					return nil, nil
				}})
				req, _ := http.NewRequest("GET", tc.url, nil)
				for i := 0; i+1 < len(tc.header); i += 2 {
					req.Header.Set(tc.header[i], tc.header[i+1])
				}
				before := fallbacks
				if _, err := tr.RoundTrip(req); err == nil {
					t.Fatal("got no error")
				}
				if f != nil && fallbacks != before+1 {
					t.Fatalf("the fallback did not dial")
				}
			}
		})
	}
}

// A connection that is not TLS is refused, and malformed requests never
// reach the wire.
func TestRefusals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr := New(Config{DialTLS: func(ctx context.Context, addr string) (net.Conn, error) {
		return net.Dial("tcp", ln.Addr().String())
	}})
	req, _ := http.NewRequest("GET", "https://example.test/", nil)
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "not TLS") {
		t.Errorf("plain TCP connection: got %v, want it refused as not TLS", err)
	}
	for _, h := range [][2]string{{"Bad Name", "v"}, {"X-Ok", "line\r\nInjected: 1"}} {
		req, _ := http.NewRequest("GET", "https://example.test/", nil)
		req.Header[h[0]] = []string{h[1]}
		if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header field") {
			t.Errorf("header %q: got %v, want it refused", h[0], err)
		} else if strings.Contains(err.Error(), "Injected") {
			t.Errorf("the refusal names the header's value: %v", err)
		}
	}
}
