// Package redistest runs a real redis-server (Debian's) for tests: on a
// free loopback port, with a password, optionally with TLS only, in a
// temporary directory, stopped when the test ends. It can be killed and
// started again on the same port, to test what happens when Redis goes
// away and comes back.
//
// Without redis-server the test is skipped, except under CI=true, where it
// fails (.ci/run installs redis-server).
package redistest

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"keyhole/certs"
)

// Binary is the redis-server the tests run.
const Binary = "/usr/bin/redis-server"

// Options say how to run the server.
type Options struct {
	// TLS makes the server speak TLS only (no plain port), under a leaf of
	// a CA of its own for 127.0.0.1 (CAFile).
	TLS bool
	// User, when set, is an ACL user (with every permission) besides the
	// default user; both have Password.
	User string
}

// Server is one running redis-server.
type Server struct {
	// Addr is host:port.
	Addr string
	// Password is the password of the default user (and of User).
	Password string
	// User is the extra ACL user, if any.
	User string
	// CAFile is the PEM file of the CA the TLS leaf chains to; empty
	// without TLS.
	CAFile string

	t    testing.TB
	dir  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a redis-server for the test and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is not installed (%v); .ci/run installs redis-server", err)
		}
		t.Skipf("redis-server is not installed: %v", err)
	}
	dir := t.TempDir()
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s := &Server{t: t, dir: dir, Password: "redis-" + hex.EncodeToString(pw), User: opts.User}
	port := freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.args = []string{
		"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--requirepass", s.Password, "--protected-mode", "yes", "--daemonize", "no",
		"--loglevel", "warning", "--logfile", filepath.Join(dir, "redis.log"),
	}
	if opts.User != "" {
		s.args = append(s.args, "--user", opts.User, "on", ">"+s.Password, "~*", "&*", "+@all")
	}
	if opts.TLS {
		s.CAFile = s.writeTLS(t)
		s.args = append(s.args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, "leaf.pem"),
			"--tls-key-file", filepath.Join(dir, "leaf-key.pem"),
			"--tls-ca-cert-file", s.CAFile, "--tls-auth-clients", "no")
	} else {
		s.args = append(s.args, "--port", strconv.Itoa(port))
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the address for KEYHOLE_REDIS_URL, with the password (and the
// user, if any): redis:// or rediss://.
func (s *Server) URL() string {
	scheme := "redis"
	if s.CAFile != "" {
		scheme = "rediss"
	}
	return fmt.Sprintf("%s://%s:%s@%s/0", scheme, s.User, s.Password, s.Addr)
}

// Kill ends the server with SIGKILL and waits until it is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port (after Kill), empty.
func (s *Server) Restart() {
	s.Kill()
	s.start()
}

// Stop ends the server (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Log returns what the server wrote to its log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(Binary, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.t.Fatalf("redis-server exited at start: %s %s", out.String(), s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server did not listen on %s within 20 s: %s", s.Addr, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	l := s.Log()
	if len(l) > 2000 {
		l = l[len(l)-2000:]
	}
	return l
}

// writeTLS makes a CA and a leaf for 127.0.0.1 and returns the CA's file.
func (s *Server) writeTLS(t testing.TB) string {
	t.Helper()
	caDir := filepath.Join(s.dir, "ca")
	auth, err := certs.LoadOrCreate(caDir, certs.Options{})
	if err != nil {
		t.Fatalf("redistest CA: %v", err)
	}
	leaf, err := auth.Leaf("127.0.0.1")
	if err != nil {
		t.Fatalf("redistest leaf: %v", err)
	}
	var chain bytes.Buffer
	for _, der := range leaf.Certificate {
		_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatalf("redistest leaf key: %v", err)
	}
	caFile := filepath.Join(s.dir, "redis-ca.pem")
	files := map[string][]byte{
		"leaf.pem":     chain.Bytes(),
		"leaf-key.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"redis-ca.pem": auth.CertPEM(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
