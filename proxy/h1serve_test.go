package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bodyThenErr reads s, then fails with err (nil: io.EOF).
type bodyThenErr struct {
	r   io.Reader
	err error
}

func (b *bodyThenErr) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) && b.err != nil {
		return n, b.err
	}
	return n, err
}

func (b *bodyThenErr) Close() error { return nil }

func TestH1WriteFraming(t *testing.T) {
	errUp := errors.New("upstream reset")
	body := func(s string) io.ReadCloser { return &bodyThenErr{r: strings.NewReader(s)} }
	cases := []struct {
		name    string
		method  string
		minor   int // of the request: HTTP/1.minor
		status  int
		length  int64
		header  http.Header
		trailer http.Header
		body    io.ReadCloser
		closing bool
		want    string
		wantErr bool
	}{
		{name: "known length", status: 200, length: 5, body: body("hello"), header: http.Header{"Content-Type": {"text/plain"}},
			want: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "framing fields of the upstream are not sent", status: 200, length: 2, body: body("hi"),
			header: http.Header{"Content-Length": {"999"}, "Transfer-Encoding": {"chunked"}, "Connection": {"keep-alive"}, "Trailer": {"X"}},
			want:   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"},
		{name: "CR and LF in a value", status: 200, length: 0, body: http.NoBody, header: http.Header{"X-A": {"a\r\nInjected: 1"}},
			want: "HTTP/1.1 200 OK\r\nX-A: a  Injected: 1\r\nContent-Length: 0\r\n\r\n"},
		{name: "unknown length is chunked", status: 200, length: -1, body: body("hello"),
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "trailers after the last chunk", status: 200, length: -1, body: body("hello"), trailer: http.Header{"X-Sum": {"abc"}},
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n"},
		{name: "a length of 0 with a body", status: 200, length: 0, body: body("hi"),
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"},
		{name: "a length of 0", status: 200, length: 0, body: body(""),
			want: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{name: "HTTP/1.0, unknown length: ended by the close", minor: -1, status: 200, length: -1, body: body("hello"),
			want: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello"},
		{name: "HTTP/1.0 keep-alive", minor: -1, status: 200, length: 5, body: body("hello"),
			want: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"},
		{name: "HEAD", method: http.MethodHead, status: 200, length: 10, body: body("never read"),
			want: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
		{name: "204", status: 204, length: -1, body: body("never read"),
			want: "HTTP/1.1 204 No Content\r\n\r\n"},
		{name: "304 keeps the length", status: 304, length: 10, body: http.NoBody,
			want: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"},
		{name: "closing", status: 403, length: 2, body: body("no"), closing: true,
			want: "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"},
		{name: "a body shorter than its length", status: 200, length: 10, body: body("hello"),
			want: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", wantErr: true},
		{name: "a broken body of known length", status: 200, length: 10, body: &bodyThenErr{strings.NewReader("hello"), errUp},
			want: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", wantErr: true},
		{name: "a broken chunked body has no last chunk", status: 200, length: -1, body: &bodyThenErr{strings.NewReader("hello"), errUp},
			want: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recordingConn{}
			h := &h1conn{conn: rc}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req := &http.Request{Method: method, ProtoMajor: 1, ProtoMinor: 1}
			if tc.minor < 0 {
				req.ProtoMinor = 0
			}
			header := tc.header
			if header == nil {
				header = http.Header{}
			}
			resp := &http.Response{StatusCode: tc.status, Header: header, Trailer: tc.trailer, ContentLength: tc.length, Body: tc.body}
			err := h.writeResponse(req, resp, tc.closing)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want one: %v", err, tc.wantErr)
			}
			if _, got := rc.sent(); got != tc.want {
				t.Errorf("wrote\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// A small response leaves in one write: status line, header and body.
func TestH1SmallResponseIsOneWrite(t *testing.T) {
	rc := &recordingConn{}
	h := &h1conn{conn: rc}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, ContentLength: 1024,
		Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 1024)))}
	if err := h.writeResponse(&http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: 1}, resp, false); err != nil {
		t.Fatal(err)
	}
	if calls, _ := rc.sent(); calls != 1 {
		t.Errorf("%d writes, want 1", calls)
	}
}

// pipeTunnel is an h1conn of a tunnel to api.example.test served over
// one end of a pipe; the test drives the other.
func pipeTunnel(t *testing.T) (*h1conn, net.Conn) {
	t.Helper()
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	tun := &tunnel{p: tp.Proxy, caller: mustAnonymous(t, tp.Proxy), dest: destination{host: "api.example.test", port: 443}, tls: true}
	h := &h1conn{p: tp.Proxy, t: tun, conn: server, scheme: "https", host: "api.example.test:443"}
	h.src.conn = server
	return h, client
}

// readResponses reads n responses from c and sends their statuses and
// bodies (or the error) on the channel it returns.
func readResponses(c net.Conn, n int) <-chan string {
	out := make(chan string, n+1)
	go func() {
		br := bufio.NewReader(c)
		for range n {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				out <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}
	}()
	return out
}

func TestH1IdleTunnelHoldsNoReader(t *testing.T) {
	h, client := pipeTunnel(t)
	get := "GET /x HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<KEY>>\r\n\r\n"
	want := "200 auth=Bearer <<KEY>>"

	responses := readResponses(client, 3)
	go io.WriteString(client, get)
	if !h.serveOne() {
		t.Fatal("the tunnel closed after a keep-alive request")
	}
	if got := <-responses; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if h.br != nil {
		t.Error("an idle tunnel holds a read buffer")
	}

	// Pipelined: the second request is buffered when the first is
	// answered, so the reader stays until it is served.
	go io.WriteString(client, get+get)
	if !h.serveOne() {
		t.Fatal("the tunnel closed after the first pipelined request")
	}
	if h.br == nil || h.br.Buffered() == 0 {
		t.Fatal("the pipelined request was not kept buffered")
	}
	if !h.serveOne() {
		t.Fatal("the tunnel closed after the second pipelined request")
	}
	for range 2 {
		if got := <-responses; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if h.br != nil {
		t.Error("an idle tunnel holds a read buffer after pipelined requests")
	}
}

func TestH1MalformedRequestGets400(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{})
	tc := dialTunnel(t, tp, "api.example.test:443", nil)
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(tc, "GET /x HTTP/1.1\r\nHost: api.example.test\r\nNo colon here <<KEY>>\r\n\r\n")
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"reason":"bad_request"`) || !resp.Close {
		t.Errorf("got %d close=%v %s, want a JSON 400 bad_request closing the connection", resp.StatusCode, resp.Close, b)
	}
	if strings.Contains(string(b), "<<KEY>>") || strings.Contains(string(b), "colon") {
		t.Error("the refusal quotes the request")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the tunnel stayed open after a malformed request")
	}
	waitFor(t, "an audit record of the malformed request", func() bool { return strings.Contains(tp.auditBuf.String(), `"reason":"bad_request"`) })
}

// Trailers of a chunked upstream response reach the agent, scrubbed.
func TestH1TrailersReachTheAgent(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Auth")
		io.WriteString(w, "part one;")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part two")
		w.Header().Set("X-Auth", r.Header.Get("Authorization"))
	})
	tp := startKeyProxy(t, up, nil, Config{})
	resp, body := get(t, tp.client(), "https://api.example.test/t", "Authorization", "Bearer <<KEY>>")
	if body != "part one;part two" {
		t.Errorf("got body %q", body)
	}
	switch got := resp.Trailer.Get("X-Auth"); {
	case strings.Contains(got, proxyTestSecret):
		t.Error("the trailer holds the secret")
	case got != "Bearer <<KEY>>":
		t.Errorf("got trailer X-Auth %q, want the placeholder back", got)
	}
}

func TestAuthorityHost(t *testing.T) {
	for in, want := range map[string]string{
		"api.example.test":          "api.example.test",
		"api.example.test:8443":     "api.example.test:8443",
		"api.example.test/evil":     "api.example.test",
		"api.example.test?":         "api.example.test",
		"api.example.test#f":        "api.example.test",
		"a@b@api.example.test:1/x":  "api.example.test:1",
		"[::1]:443":                 "[::1]:443",
		"":                          "",
		"user@evil.test/api.x.test": "evil.test",
	} {
		if got := authorityHost(in); got != want {
			t.Errorf("authorityHost(%q) = %q, want %q", in, got, want)
		}
	}
}

// A tunnel that does not start with a TLS handshake is served by the same
// loop, as plain HTTP: its requests are http:// ones, which the rules
// decide as such (here: the secret may only go over https).
func TestH1TunnelWithoutTLS(t *testing.T) {
	var hits atomic.Int64
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	tp := startKeyProxy(t, up, nil, Config{})
	c, err := net.DialTimeout("tcp", tp.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v", err)
	}
	for _, host := range []string{"api.example.test", "api.example.test:443"} {
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: "+host+"\r\nAuthorization: Bearer <<KEY>>\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		t.Logf("Host %s: %d %s", host, resp.StatusCode, b)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"reason"`) {
			t.Errorf("Host %s: got %d, want a JSON 403", host, resp.StatusCode)
		}
		if resp.Close {
			break
		}
	}
	if hits.Load() != 0 {
		t.Error("a plain-HTTP request inside a tunnel reached the upstream")
	}
}

// A trailer the upstream did not announce with the header still reaches
// the agent, scrubbed, whichever protocol either leg speaks: left to the
// transport, it would land in a map of its own that nothing scrubs (over
// HTTP/2 it reached the agent with the secret in it).
func TestUnannouncedTrailersAreScrubbed(t *testing.T) {
	for _, tc := range []struct {
		name                string
		agentH2, upstreamH2 bool
	}{
		{"h1 agent, h1 upstream", false, false},
		{"h1 agent, h2 upstream", false, true},
		{"h2 agent, h1 upstream", true, false},
		{"h2 agent, h2 upstream", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "part one;")
				w.(http.Flusher).Flush()
				io.WriteString(w, "part two")
				w.Header().Set(http.TrailerPrefix+"X-Late", "late "+r.Header.Get("Authorization"))
			}, func(s *httptest.Server) { s.EnableHTTP2 = tc.upstreamH2 })
			tp := startKeyProxy(t, up, nil, Config{})
			var resp *http.Response
			var body string
			if tc.agentH2 {
				resp, body = h2Get(t, dialH2(t, tp, "api.example.test:443"), "https://api.example.test/t", "Authorization", "Bearer <<KEY>>")
			} else {
				resp, body = get(t, tp.client(), "https://api.example.test/t", "Authorization", "Bearer <<KEY>>")
			}
			if body != "part one;part two" {
				t.Errorf("got body %q", body)
			}
			if strings.Contains(fmt.Sprint(resp.Trailer), proxyTestSecret) {
				t.Fatal("an unannounced trailer carried the secret to the agent")
			}
			if got := resp.Trailer.Get("X-Late"); !strings.HasPrefix(got, "late ") {
				t.Errorf("the unannounced trailer did not reach the agent (got %q)", got)
			}
			if got := up.last.Load().ProtoMajor; got != map[bool]int{false: 1, true: 2}[tc.upstreamH2] {
				t.Errorf("upstream saw HTTP/%d", got)
			}
		})
	}
}

func TestContinueBody(t *testing.T) {
	t.Run("asked for on the first read", func(t *testing.T) {
		rc := &recordingConn{}
		b := &continueBody{ReadCloser: io.NopCloser(strings.NewReader("hello")), client: rc}
		got, err := io.ReadAll(b)
		b.stop()
		if err != nil || string(got) != "hello" || !b.sentContinue() {
			t.Fatalf("read %q, %v", got, err)
		}
		if calls, sent := rc.sent(); calls != 1 || sent != "HTTP/1.1 100 Continue\r\n\r\n" {
			t.Errorf("sent %q in %d writes, want one 100 Continue", sent, calls)
		}
	})
	t.Run("never read after the answer", func(t *testing.T) {
		rc := &recordingConn{}
		under := &bodyThenErr{r: strings.NewReader("hello")}
		b := &continueBody{ReadCloser: under, client: rc}
		b.stop()
		if n, err := b.Read(make([]byte, 5)); n != 0 || err == nil {
			t.Errorf("a body the client was not asked for was read: %d bytes, %v", n, err)
		}
		if calls, _ := rc.sent(); calls != 0 || b.sentContinue() {
			t.Error("100 Continue sent after the final answer")
		}
		if under.r.(*strings.Reader).Len() != 5 {
			t.Error("the tunnel's reader was read")
		}
	})
}

// A WebSocket frame the client sends in the same write as the upgrade
// request, buffered with the request's header, still reaches the upstream
// after the 101.
func TestH1UpgradeReplaysBufferedFrame(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		var hdr [6]byte // a masked client frame of < 126 bytes
		if _, err := io.ReadFull(brw, hdr[:]); err != nil {
			return
		}
		payload := make([]byte, hdr[1]&0x7f)
		io.ReadFull(brw, payload)
		for i := range payload {
			payload[i] ^= hdr[2+i%4]
		}
		reply := append([]byte{0x81, byte(len("echo: ") + len(payload))}, "echo: "...)
		conn.Write(append(reply, payload...))
	})
	tp := startKeyProxy(t, up, nil, Config{})
	tc := dialTunnel(t, tp, "api.example.test:443", nil)
	_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | 5, mask[0], mask[1], mask[2], mask[3]}
	for i, c := range []byte("early") {
		frame = append(frame, c^mask[i%4])
	}
	io.WriteString(tc, "GET /ws HTTP/1.1\r\nHost: api.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"+string(frame))
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v", err)
	}
	var got [2 + len("echo: early")]byte
	if _, err := io.ReadFull(br, got[:]); err != nil {
		t.Fatalf("no echo of the early frame: %v", err)
	}
	if string(got[2:]) != "echo: early" {
		t.Errorf("got %q, want the early frame echoed", got[2:])
	}
}
