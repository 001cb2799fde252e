package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTunnelLeafIsConnectTarget checks that tunnels sharing one TLS
// configuration each get the leaf of their own CONNECT target, and that a
// ClientHello naming another server fails the handshake and is audited,
// with tunnels to two hosts opened at once.
func TestTunnelLeafIsConnectTarget(t *testing.T) {
	tp := startTestProxy(t, nil, "resolve:\n  api.example.test: 127.0.0.1:9\n  other.example.test: 127.0.0.1:9\n", Config{})
	cases := []struct {
		name, connect, sni string
		fails              bool
	}{
		{name: "api", connect: "api.example.test", sni: "api.example.test"},
		{name: "other", connect: "other.example.test", sni: "other.example.test"},
		{name: "no server name", connect: "other.example.test", sni: ""},
		{name: "server name in capitals", connect: "api.example.test", sni: "API.Example.Test"},
		{name: "server name of another tunnel's host", connect: "api.example.test", sni: "other.example.test", fails: true},
		{name: "server name of another host", connect: "other.example.test", sni: "evil.example.test", fails: true},
	}
	const rounds = 8
	var wg sync.WaitGroup
	errs := make(chan error, len(cases)*rounds)
	for range rounds {
		for _, tc := range cases {
			wg.Go(func() {
				c, err := connectRaw(tp.addr, tc.connect+":443")
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				tlsc := tls.Client(c, &tls.Config{
					ServerName: tc.sni,
					// Verified below, so that a ClientHello without a
					// server name, or with another, still checks the leaf
					// against the CONNECT host.
					InsecureSkipVerify: true,
					VerifyConnection: func(cs tls.ConnectionState) error {
						_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: tp.caPool, DNSName: tc.connect})
						return err
					},
				})
				err = tlsc.Handshake()
				switch {
				case tc.fails && err == nil:
					errs <- errors.New(tc.name + ": handshake succeeded, want it to fail")
				case !tc.fails && err != nil:
					errs <- errors.New(tc.name + ": handshake: " + err.Error())
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mismatches := 0
	for _, rec := range tp.auditRecords(t) {
		if rec["reason"] == "host_mismatch" {
			mismatches++
		}
	}
	if want := 2 * rounds; mismatches != want {
		t.Errorf("got %d host_mismatch records, want %d", mismatches, want)
	}
}

// TestTunnelHelloArrivesInPieces checks the first read of a tunnel when the
// ClientHello does not arrive whole: in pieces, one byte first, or in the
// same write as the CONNECT.
func TestTunnelHelloArrivesInPieces(t *testing.T) {
	tp := startTestProxy(t, nil, "resolve:\n  api.example.test: 127.0.0.1:9\n", Config{})
	cases := []struct {
		name  string
		sizes []int // the sizes of the first writes, the rest in one
		early bool  // the ClientHello is sent with the CONNECT
	}{
		{name: "whole"},
		{name: "first byte alone", sizes: []int{1}},
		{name: "record header alone", sizes: []int{5}},
		{name: "small pieces", sizes: []int{1, 2, 3, 50, 100, 700}},
		{name: "with the CONNECT", early: true},
		{name: "start with the CONNECT", early: true, sizes: []int{3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", tp.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			w := &piecewise{Conn: c, sizes: tc.sizes}
			connect := "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n"
			if tc.early {
				w.prefix = []byte(connect)
			} else if _, err := io.WriteString(c, connect); err != nil {
				t.Fatal(err)
			}
			r := &skipAnswer{Conn: w}
			if !tc.early {
				if err := r.skip(); err != nil {
					t.Fatal(err)
				}
			}
			tlsc := tls.Client(r, &tls.Config{ServerName: "api.example.test", RootCAs: tp.caPool})
			if err := tlsc.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
		})
	}
}

// piecewise sends its first write (prefix, then the ClientHello) in
// pieces of sizes, each its own TCP send.
type piecewise struct {
	net.Conn
	prefix []byte
	sizes  []int
	done   bool
}

func (w *piecewise) Write(p []byte) (int, error) {
	if w.done {
		return w.Conn.Write(p)
	}
	w.done = true
	all := append(append([]byte(nil), w.prefix...), p...)
	for _, n := range w.sizes {
		n = min(n, len(all))
		if _, err := w.Conn.Write(all[:n]); err != nil {
			return 0, err
		}
		all = all[n:]
		time.Sleep(5 * time.Millisecond) // so that the proxy may read a piece alone
	}
	if _, err := w.Conn.Write(all); err != nil {
		return 0, err
	}
	return len(p), nil
}

// skipAnswer reads past the proxy's answer to the CONNECT (when the
// CONNECT went with the ClientHello, on the first read) before handing
// the stream to the TLS client.
type skipAnswer struct {
	net.Conn
	skipped bool
}

func (r *skipAnswer) skip() error {
	var got []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(got, []byte("\r\n\r\n")) {
		if _, err := r.Conn.Read(one); err != nil {
			return err
		}
		got = append(got, one[0])
	}
	r.skipped = true
	if !strings.HasPrefix(string(got), "HTTP/1.1 200") {
		return errors.New("CONNECT answer: " + string(got))
	}
	return nil
}

func (r *skipAnswer) Read(p []byte) (int, error) {
	if !r.skipped {
		if err := r.skip(); err != nil {
			return 0, err
		}
	}
	return r.Conn.Read(p)
}

// TestHelloConnRead checks that a tunnel's connection gives back what its
// first read took, in reads of any size, then reads on.
func TestHelloConnRead(t *testing.T) {
	first := bytes.Repeat([]byte("0123456789"), 300) // 3000 bytes, read at once
	rest := []byte("and then the connection")
	for _, size := range []int{1, 5, 512, 2999, 3000, 4096} {
		server, client := net.Pipe()
		_ = server.SetDeadline(time.Now().Add(10 * time.Second))
		_ = client.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			client.Write(first)
			client.Write(rest)
			client.Close()
		}()
		hc, err := readHello(server, nil, nil)
		if err != nil {
			t.Fatalf("size %d: readHello: %v", size, err)
		}
		if hc.first() != '0' {
			t.Fatalf("size %d: first byte got %q, want '0'", size, hc.first())
		}
		var got []byte
		buf := make([]byte, size)
		for {
			n, err := hc.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("size %d: read: %v", size, err)
			}
		}
		if want := string(first) + string(rest); string(got) != want {
			t.Errorf("reads of %d bytes got %d bytes, want %d, the same", size, len(got), len(want))
		}
		if hc.buf != nil {
			t.Errorf("size %d: the first read's buffer is still held after it was read", size)
		}
	}
}

// connectRaw opens a tunnel to target through the proxy at addr and
// returns its connection once the proxy has answered 200. The answer is
// read byte by byte, so that nothing after it is read ahead.
func connectRaw(addr, target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	r := &skipAnswer{Conn: c}
	if err := r.skip(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TestClientHelloInOneRead checks that a ClientHello written whole is read
// from the connection once, by readHello, and that the handshake then
// takes it from there: the server's first flight follows exactly one read
// of the connection (the tunnel's first read used to take one byte, and
// the handshake two more reads for the rest).
func TestClientHelloInOneRead(t *testing.T) {
	tp := startTestProxy(t, nil, "resolve:\n  api.example.test: 127.0.0.1:9\n", Config{})
	server, client := net.Pipe()
	_ = server.SetDeadline(time.Now().Add(10 * time.Second))
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	defer client.Close()
	counted := &countingConn{Conn: server}
	done := make(chan error, 1)
	go func() {
		hc, err := readHello(counted, &tunnel{dest: destination{host: "api.example.test", port: 443}}, nil)
		if err != nil {
			done <- err
			return
		}
		tc := tls.Server(hc, tp.tunnelTLS)
		done <- tc.Handshake()
		tc.Close()
	}()
	tlsc := tls.Client(client, &tls.Config{ServerName: "api.example.test", RootCAs: tp.caPool})
	if err := tlsc.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := counted.readsBeforeWrite.Load(); got != 1 {
		t.Errorf("reads of the connection before the server's first flight: got %d, want 1", got)
	}
}

// countingConn counts the reads made on it before its first write.
type countingConn struct {
	net.Conn
	reads, readsBeforeWrite atomic.Int64
	wrote                   atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.wrote.CompareAndSwap(false, true) {
		c.readsBeforeWrite.Store(c.reads.Load())
	}
	return c.Conn.Write(p)
}

// TestTunnelSessionsNeverResume checks that no tunnel resumes a TLS
// session: every tunnel shares one configuration, and a resumed session
// would skip getCertificate, so the check of the server name against the
// CONNECT target. A client that keeps sessions still makes a full
// handshake each time, and still cannot name another host than the
// CONNECT target.
func TestTunnelSessionsNeverResume(t *testing.T) {
	tp := startTestProxy(t, nil, "resolve:\n  api.example.test: 127.0.0.1:9\n  other.example.test: 127.0.0.1:9\n",
		Config{HeaderTimeout: 300 * time.Millisecond}) // the proxy closes each tunnel soon: the client reads to the end
	cache := tls.NewLRUClientSessionCache(8)
	handshake := func(connect string) (resumed bool, err error) {
		c, err := connectRaw(tp.addr, connect+":443")
		if err != nil {
			return false, err
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{ServerName: "api.example.test", RootCAs: tp.caPool, ClientSessionCache: cache})
		if err := tc.Handshake(); err != nil {
			return false, err
		}
		// Reading to the end takes in any session ticket sent after the
		// handshake.
		_, _ = io.Copy(io.Discard, tc)
		return tc.ConnectionState().DidResume, nil
	}
	for i := range 3 {
		resumed, err := handshake("api.example.test")
		if err != nil {
			t.Fatalf("tunnel %d: %v", i, err)
		}
		if resumed {
			t.Fatalf("tunnel %d resumed a session, want a full handshake", i)
		}
	}
	if _, err := handshake("other.example.test"); err == nil {
		t.Error("a tunnel to other.example.test naming api.example.test completed its handshake, want it to fail")
	}
}
