package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scriptConn is a net.Conn that reads in and records what is written.
type scriptConn struct {
	net.Conn // nil: only the methods below are used
	in       io.Reader
	out      bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) CloseWrite() error                { return nil }

// FuzzH1Loop feeds arbitrary bytes to the HTTP/1 loop of a tunnel to a
// test upstream. Whatever the client sends, what the loop writes back
// must be a sequence of complete, well-framed HTTP/1.1 responses, at most
// one per request it could have read, and no request may be answered
// after one that closes the connection.
func FuzzH1Loop(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: api.example.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: api.example.test/evil\r\n\r\n",
		"GET / HTTP/1.1\r\nBad\r\n\r\n",
		"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	up := startTestUpstream(f, []string{"api.example.test"}, nil)
	tp := startTestProxy(f, up, "resolve:\n  api.example.test: UPSTREAM\n", Config{})
	c, ref := tp.authenticate(&http.Request{Header: http.Header{}}, tp.policy.Load(), time.Now())
	if ref != nil {
		f.Fatal(ref)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if bytes.Contains(in, []byte("HEAD")) {
			t.Skip("a response to HEAD cannot be read without knowing the method (TestH1WriteFraming covers it)")
		}
		conn := &scriptConn{in: bytes.NewReader(in)}
		tun := &tunnel{p: tp.Proxy, caller: c, dest: destination{host: "api.example.test", port: 443}, tls: true}
		h := &h1conn{p: tp.Proxy, t: tun, conn: conn, scheme: "https", host: "api.example.test:443"}
		h.src.conn = conn
		served := 0
		for h.serveOne() {
			served++
			if served > len(in) {
				t.Fatal("more requests served than bytes sent")
			}
		}
		h.close()
		br := bufio.NewReader(&conn.out)
		for n := 0; ; n++ {
			if _, err := br.Peek(1); errors.Is(err, io.EOF) {
				return
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
			if err != nil {
				t.Fatalf("response %d does not parse: %v", n, err)
			}
			if resp.StatusCode == http.StatusContinue {
				continue
			}
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				t.Fatalf("response %d: body: %v", n, err)
			}
			if n > served {
				t.Fatalf("%d responses for %d requests served", n+1, served)
			}
			if resp.Close && br.Buffered() > 0 {
				rest, _ := br.Peek(br.Buffered())
				t.Fatalf("bytes after a response that closes the connection: %q", strings.TrimSpace(string(rest)))
			}
		}
	})
}
