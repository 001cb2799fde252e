// Package e2e tests the built keyhole binary with real clients (curl, Python
// requests, Go net/http) against local TLS upstreams on 127.0.0.1, reached
// through the rules' resolve pins. Nothing leaves the machine.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"keyhole/demo"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binary is the keyhole binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyhole-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "keyhole")
	build := exec.Command("go", "build", "-o", binary, "../cmd/keyhole")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building keyhole:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopPostgres()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Secret values the tests give keyhole. No client, log or response may ever
// show one.
const (
	stripeValue = "sk_live_51TESTxyzSECRETvalue0123456789"
	githubValue = "ghp_TESTgithubSECRET0123456789abcdefABCD"
	basicValue  = "hunter2-TEST-basic-SECRET"
	plainValue  = "plain-TEST-SECRET-55aa66bb77cc"
)

var allSecretValues = append([]string{stripeValue, githubValue, basicValue, plainValue}, kindSecretValues...)

// testCA signs the certificates of the test upstreams; keyhole trusts it
// through KEYHOLE_UPSTREAM_CA_FILE.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pemPath string
}

var (
	caOnce   sync.Once
	sharedCA *testCA
	caErr    error
)

func upstreamCA(t *testing.T) *testCA {
	t.Helper()
	caOnce.Do(func() { sharedCA, caErr = newTestCA() })
	if caErr != nil {
		t.Fatal(caErr)
	}
	return sharedCA
}

func newTestCA() (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyhole e2e upstream CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	dir, err := os.MkdirTemp("", "keyhole-e2e-ca-")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "upstream-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pemPath: p}, nil
}

// leaf returns a certificate for names signed by the CA (or, with
// selfSigned, by nobody keyhole trusts).
func (ca *testCA) leaf(t *testing.T, names []string, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// upstream is a local server that records what reached it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request // headers of every request that reached it
}

// Addr returns the upstream's "127.0.0.1:port".
func (u *upstream) Addr() string { return u.Listener.Addr().String() }

// Hits returns how many requests reached the upstream.
func (u *upstream) Hits() int64 { return u.hits.Load() }

// Last returns the last request that reached the upstream.
func (u *upstream) Last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) record(r *http.Request) {
	u.hits.Add(1)
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(context.Background()))
	u.mu.Unlock()
}

// newUpstream starts a TLS upstream with a certificate for names, serving
// h (echo when nil).
func newUpstream(t *testing.T, names []string, h http.Handler) *upstream {
	t.Helper()
	ca := upstreamCA(t)
	return newUpstreamWithCert(t, ca.leaf(t, names, time.Now().Add(12*time.Hour)), h)
}

func newUpstreamWithCert(t *testing.T, cert tls.Certificate, h http.Handler) *upstream {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(echo)
	}
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		h.ServeHTTP(w, r)
	}))
	u.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

// newPlainUpstream starts a plain-HTTP upstream.
func newPlainUpstream(t *testing.T, h http.Handler) *upstream {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(echo)
	}
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// echoed is what the echo handler answers: the request as the upstream saw
// it.
type echoed struct {
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// echo answers with the request it received, and reflects its
// Authorization header in a response header too: the echo-back that
// scrubbing must catch.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if a := r.Header.Get("Authorization"); a != "" {
		w.Header().Set("X-Echo-Authorization", a)
	}
	_ = json.NewEncoder(w).Encode(echoed{Method: r.Method, Host: r.Host, Path: r.URL.Path, Headers: r.Header})
}

// keyhole is a running keyhole serve.
type keyhole struct {
	t        *testing.T
	cmd      *exec.Cmd
	Addr     string // proxy address, 127.0.0.1:port
	StateDir string
	CAFile   string // keyhole's CA certificate, for clients
	Rules    string // path of the rules file
	stdout   *syncBuffer
	stderr   *syncBuffer
	done     chan struct{}
	exitErr  error
	mu       sync.Mutex
	values   []string // secret values the test learned while it ran (see AlsoSecret)
}

// AlsoSecret adds values to the ones keyhole's output must never hold, for a
// value a test learns as it runs (a credential an upstream minted and
// keyhole captured).
func (k *keyhole) AlsoSecret(values ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.values = append(k.values, values...)
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var readyLine = regexp.MustCompile(`msg="keyhole is listening" addr=(\S+)`)

// startKeyhole writes rulesYAML and runs keyhole serve on it with extra
// environment variables. It stops keyhole when the test ends and then
// fails the test if a secret value appears in anything keyhole wrote.
func startKeyhole(t *testing.T, rulesYAML string, env ...string) *keyhole {
	t.Helper()
	dir := t.TempDir()
	k := &keyhole{
		t:        t,
		StateDir: filepath.Join(dir, "state"),
		Rules:    filepath.Join(dir, "keyhole.yaml"),
		stdout:   &syncBuffer{},
		stderr:   &syncBuffer{},
		done:     make(chan struct{}),
	}
	k.CAFile = filepath.Join(k.StateDir, "ca.pem")
	if err := os.WriteFile(k.Rules, []byte(rulesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(binary, "serve", "--listen", "127.0.0.1:0", "--rules", k.Rules)
	k.cmd.Env = append(baseEnv(),
		"KEYHOLE_STATE_DIR="+k.StateDir,
		"KEYHOLE_UPSTREAM_CA_FILE="+upstreamCA(t).pemPath,
		"KEYHOLE_LOG_LEVEL=debug",
		"STRIPE_KEY="+stripeValue,
		"GITHUB_KEY="+githubValue,
		"BASIC_PASSWORD="+basicValue,
		"PLAIN_KEY="+plainValue,
	)
	k.cmd.Env = append(k.cmd.Env, env...)
	k.cmd.Stdout = k.stdout
	pr, pw := io.Pipe()
	k.cmd.Stderr = pw
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		k.exitErr = k.cmd.Wait()
		pw.Close()
		close(k.done)
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			k.stderr.Write([]byte(line + "\n"))
			if m := readyLine.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(k.stderr, pr)
	}()
	select {
	case k.Addr = <-addr:
	case <-k.done:
		t.Fatalf("keyhole exited before it was ready: %v\nstderr:\n%s", k.exitErr, k.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("keyhole was not ready after 20s\nstderr:\n%s", k.stderr)
	}
	t.Cleanup(func() {
		k.Stop()
		k.assertNoSecrets()
	})
	return k
}

// baseEnv is the test process's environment without proxy settings, which
// would send keyhole's own traffic elsewhere.
func baseEnv() []string { return demo.CleanEnv() }

// Stop sends SIGTERM and waits for keyhole to exit.
func (k *keyhole) Stop() {
	if k.cmd.ProcessState != nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(15 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
		k.t.Errorf("keyhole did not stop within 15s of SIGTERM")
	}
}

// assertNoSecrets fails the test if any secret value appears in keyhole's
// stdout (the audit log) or stderr.
func (k *keyhole) assertNoSecrets() {
	k.t.Helper()
	k.mu.Lock()
	values := append(slices.Clone(allSecretValues), k.values...)
	k.mu.Unlock()
	for name, out := range map[string]string{"stdout (audit log)": k.stdout.String(), "stderr": k.stderr.String()} {
		for i, v := range values {
			if strings.Contains(out, v) {
				k.t.Errorf("keyhole's %s holds secret value #%d", name, i)
			}
		}
	}
}

// AuditRecords returns the audit records written so far.
func (k *keyhole) AuditRecords(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	log := k.stdout.String()
	// Only whole lines: keyhole may be writing the next one right now.
	log = log[:strings.LastIndexByte(log, '\n')+1]
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line is not JSON: %v", err)
		}
		out = append(out, rec)
	}
	return out
}

// WaitAudit waits until an audit record with the request id id exists, and
// returns it.
func (k *keyhole) WaitAudit(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range k.AuditRecords(t) {
			if match(r) {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no matching audit record; log:\n%s", k.stdout)
	return nil
}

// ProxyURL returns the proxy URL, with credentials when user is not empty.
func (k *keyhole) ProxyURL(user, token string) string {
	if user == "" {
		return "http://" + k.Addr
	}
	return "http://" + user + ":" + token + "@" + k.Addr
}
