package pgfront

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"keyhole/certs"
	"keyhole/rules"
)

// remoteConn is one end of a pipe that claims to come from addr.
type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

func newTestServer(t *testing.T) *Server {
	t.Helper()
	t.Setenv("T_TOKEN", "static-token-xyz")
	t.Setenv("DB_USER", "real_user")
	t.Setenv("DB_PASSWORD", "real-password")
	set, err := rules.Parse("x.yaml", []byte(`
databases:
  DB_PROD:
    listen: 127.0.0.1:15432
    upstream: db.internal:5432
    database: app
    user: env:DB_USER
    password: env:DB_PASSWORD
agents:
  analyst: {token: env:T_TOKEN, databases: [DB_PROD]}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := certs.LoadOrCreate(t.TempDir(), certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{LoginTimeout: 10 * time.Second}, Deps{Rules: set, Authority: a})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// session starts handle on one end of a pipe from remote and returns the
// other end.
func pipeSession(t *testing.T, s *Server, remote string) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	addr, _ := net.ResolveTCPAddr("tcp", remote)
	go s.handle(remoteConn{server, addr}, "127.0.0.1:15432")
	t.Cleanup(func() { client.Close() })
	_ = client.SetDeadline(time.Now().Add(10 * time.Second))
	return client
}

func send(t *testing.T, w io.Writer, msg pgproto3.FrontendMessage) {
	t.Helper()
	b, err := msg.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func startup(user, db string) *pgproto3.StartupMessage {
	return &pgproto3.StartupMessage{ProtocolVersion: protocol30, Parameters: map[string]string{"user": user, "database": db}}
}

// TestPlaintextRefusedOffLoopback: a token is asked for only over TLS or
// from loopback.
func TestPlaintextRefusedOffLoopback(t *testing.T) {
	s := newTestServer(t)
	c := pipeSession(t, s, "10.1.2.3:40000")
	send(t, c, startup("analyst", "DB_PROD"))
	fe := pgproto3.NewFrontend(c, c)
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	er, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || er.Code != codeInvalidAuthSpec || !strings.Contains(er.Detail, "plaintext_not_allowed") {
		t.Fatalf("got %#v, want 28000 plaintext_not_allowed before any password request", msg)
	}
}

// TestNegotiation: GSSENCRequest is declined, SSLRequest answered with a
// leaf of keyhole's CA, and only then is the password asked for.
func TestNegotiation(t *testing.T) {
	s := newTestServer(t)
	c := pipeSession(t, s, "10.1.2.3:40000")
	send(t, c, &pgproto3.GSSEncRequest{})
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("GSSENCRequest: got %q, %v; want N", b[0], err)
	}
	send(t, c, &pgproto3.SSLRequest{})
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest: got %q, %v; want S", b[0], err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.authority.Certificate())
	tc := tls.Client(c, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS with keyhole's CA: %v", err)
	}
	send(t, tc, startup("analyst", "DB_PROD"))
	fe := pgproto3.NewFrontend(tc, tc)
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("got %#v, want a cleartext password request", msg)
	}
	send(t, tc, &pgproto3.PasswordMessage{Password: "wrong"})
	msg, err = fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if er, ok := msg.(*pgproto3.ErrorResponse); !ok || er.Code != codeInvalidPassword {
		t.Fatalf("got %#v, want 28P01", msg)
	}
}

// TestCancelNeedsTheKey: a cancel request with a wrong key is dropped.
func TestCancelNeedsTheKey(t *testing.T) {
	s := newTestServer(t)
	ss := &session{s: s}
	ck := s.newCancelKey(ss)
	wrong := ck.key
	wrong[0] ^= 1
	// With the wrong key forwardCancel returns without touching the
	// session (whose upstream is nil: touching it would panic).
	s.forwardCancel(&pgproto3.CancelRequest{ProcessID: ck.pid, SecretKey: wrong[:]})
	s.forwardCancel(&pgproto3.CancelRequest{ProcessID: ck.pid + 1, SecretKey: ck.key[:]})
}

// TestHugePasswordRefused: before authentication a client cannot make
// keyhole read a large message.
func TestHugePasswordRefused(t *testing.T) {
	s := newTestServer(t)
	c := pipeSession(t, s, "127.0.0.1:40000")
	send(t, c, startup("analyst", "DB_PROD"))
	fe := pgproto3.NewFrontend(c, c)
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("got %#v", msg)
	}
	// A PasswordMessage header declaring 32 MiB, then nothing.
	hdr := []byte{'p', 0x02, 0, 0, 4}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Write(hdr)
		_, _ = io.Copy(io.Discard, c) // keyhole closes the connection
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("keyhole kept reading a 32 MiB password message")
	}
}

type localConn struct {
	net.Conn
	local net.Addr
}

func (c localConn) LocalAddr() net.Addr { return c.local }

// TestLeafName: the leaf is for SNI, else the listen host, else (on an
// unspecified listen address) the address the client reached.
func TestLeafName(t *testing.T) {
	s := newTestServer(t)
	local, _ := net.ResolveTCPAddr("tcp", "10.9.8.7:5432")
	tests := []struct {
		listen, sni, want string
	}{
		{"127.0.0.1:15432", "", "127.0.0.1"},
		{"127.0.0.1:15432", "db.keyhole.test", "db.keyhole.test"},
		{"0.0.0.0:15432", "", "10.9.8.7"},
		{"[::]:15432", "", "10.9.8.7"},
	}
	for _, tc := range tests {
		cert, err := s.tlsConfig(tc.listen).GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni, Conn: localConn{local: local}})
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.Leaf.VerifyHostname(tc.want); err != nil {
			t.Errorf("listen %s, SNI %q: %v", tc.listen, tc.sni, err)
		}
	}
}
