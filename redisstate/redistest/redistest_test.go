package redistest_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"keyhole/redisstate/redistest"
)

// ping sends AUTH and PING in RESP and returns the server's replies.
func ping(t *testing.T, c net.Conn, user, pw string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(pw), pw)
	if user != "" {
		auth = fmt.Sprintf("*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(user), user, len(pw), pw)
	}
	if _, err := c.Write([]byte(auth + "*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	a, _ := r.ReadString('\n')
	b, _ := r.ReadString('\n')
	return strings.TrimSpace(a) + " " + strings.TrimSpace(b)
}

func TestPlainWithPassword(t *testing.T) {
	s := redistest.Start(t, redistest.Options{User: "keyhole"})
	if !strings.HasPrefix(s.URL(), "redis://keyhole:") {
		t.Errorf("URL %q does not start with redis://keyhole:", s.URL())
	}
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := ping(t, c, "keyhole", s.Password); got != "+OK +PONG" {
		t.Errorf("AUTH+PING = %q, want +OK +PONG", got)
	}
	c2, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := ping(t, c2, "", "wrong"); strings.HasPrefix(got, "+OK") {
		t.Errorf("a wrong password was accepted: %q", got)
	}
}

func TestTLSKillRestart(t *testing.T) {
	s := redistest.Start(t, redistest.Options{TLS: true})
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	dial := func() (*tls.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr,
			&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	}
	c, err := dial()
	if err != nil {
		t.Fatalf("verified TLS to redis: %v", err)
	}
	if got := ping(t, c, "", s.Password); got != "+OK +PONG" {
		t.Errorf("AUTH+PING = %q", got)
	}
	c.Close()
	s.Kill()
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("redis still answers after Kill")
	}
	s.Restart()
	c, err = dial()
	if err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	defer c.Close()
	if got := ping(t, c, "", s.Password); got != "+OK +PONG" {
		t.Errorf("after Restart AUTH+PING = %q", got)
	}
}
