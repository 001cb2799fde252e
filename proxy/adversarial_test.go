package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawTunnel opens a CONNECT tunnel to host through tp and completes the
// TLS handshake inside it, for tests that write requests byte by byte.
func rawTunnel(t *testing.T, tp *testProxy, host string) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", tp.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n", host, host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: got %v %v, want 200", resp, err)
	}
	if br.Buffered() > 0 {
		t.Fatal("bytes after the CONNECT response")
	}
	tc := tls.Client(c, &tls.Config{ServerName: host, RootCAs: tp.caPool})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc, bufio.NewReader(tc)
}

// TestTunnelHeaderBound checks the bound on a request header inside a
// tunnel, where goproxy's parser has none: a longer header closes the
// tunnel without reaching the upstream, while bodies of any size, long
// keep-alive tunnels and pipelined requests are not mistaken for one.
func TestTunnelHeaderBound(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "read=%d auth=%s", n, r.Header.Get("Authorization"))
	})
	tp := startKeyProxy(t, up, nil, Config{MaxHeaderBytes: 4 << 10})
	limit := 4<<10 + headerSlack
	get := "GET /x HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<KEY>>\r\n\r\n"
	body := strings.Repeat("b", 1<<20)
	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	pipelined := make([]string, 2*limit/len(get))
	for i := range pipelined {
		pipelined[i] = "read=0 auth=Bearer <<KEY>>"
	}
	cases := []struct {
		name   string
		send   string
		want   []string // bodies of the responses, in order
		closed bool     // then the tunnel is closed
	}{
		{name: "header past the bound",
			send: "GET /x HTTP/1.1\r\nHost: api.example.test\r\nX-Pad: " + strings.Repeat("a", 2*limit) + "\r\n\r\n",
			want: nil, closed: true},
		{name: "header past the bound after a first request",
			send: get + "GET /x HTTP/1.1\r\nHost: api.example.test\r\nX-Pad: " + strings.Repeat("a", 2*limit) + "\r\n\r\n",
			want: []string{"read=0 auth=Bearer <<KEY>>"}, closed: true},
		{name: "header within MaxHeaderBytes",
			send: "GET /x HTTP/1.1\r\nHost: api.example.test\r\nX-Pad: " + strings.Repeat("a", 3<<10) + "\r\n\r\n",
			want: []string{"read=0 auth="}},
		{name: "body past the bound, then another request",
			send: "POST /x HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<KEY>>\r\nContent-Length: 1048576\r\n\r\n" + body + get,
			want: []string{"read=1048576 auth=Bearer <<KEY>>", "read=0 auth=Bearer <<KEY>>"}},
		{name: "chunked body past the bound, then another request",
			send: "POST /x HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + get,
			want: []string{"read=1048576 auth=", "read=0 auth=Bearer <<KEY>>"}},
		{name: "refused request's unread body, then another request",
			send: "POST /x HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer <<NOPE>>\r\nContent-Length: 1048576\r\n\r\n" + body + get,
			want: []string{`"reason":"unknown_secret"`, "read=0 auth=Bearer <<KEY>>"}},
		{name: "pipelined requests longer together than the bound",
			send: strings.Repeat(get, len(pipelined)), want: pipelined},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			conn, br := rawTunnel(t, tp, "api.example.test")
			go io.WriteString(conn, tc.send) // a bounded keyhole may stop reading
			for i, want := range tc.want {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), proxyTestSecret) {
					t.Fatalf("response %d holds the secret", i)
				}
				if !strings.Contains(string(b), want) {
					t.Errorf("response %d: got %.100q, want it to contain %q", i, b, want)
				}
			}
			if tc.closed {
				if resp, err := http.ReadResponse(br, nil); err == nil {
					t.Fatalf("got a %d response, want the tunnel closed", resp.StatusCode)
				}
				if got := up.hits.Load() - before; got != int64(len(tc.want)) {
					t.Errorf("the upstream received %d requests, want %d", got, len(tc.want))
				}
			}
		})
	}
}

func TestCheckHeaderNames(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"Authorization", true}, {"X-Api_Key.v2!#$%&'*+^`|~", true},
		{"Transfer-Encoding ", false}, {" X", false}, {"X Y", false}, {"", false},
		{"X-<<KEY>>", false}, {"X:Y", false}, {"X\x00", false}, {"X\u00e9", false}, {"X\x7f", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			ref := checkHeaderNames(http.Header{"Host": {"x"}, tc.name: {"1"}}, "api.example.test")
			if got := ref == nil; got != tc.ok {
				t.Fatalf("got allowed %v, want %v", got, tc.ok)
			}
			if ref != nil && (ref.Reason != "bad_request" || tc.name != "" && strings.Contains(ref.Message, tc.name)) {
				t.Errorf("got reason %s, message %q; want bad_request, not naming the header", ref.Reason, ref.Message)
			}
		})
	}
}
