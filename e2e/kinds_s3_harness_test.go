package e2e

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// versitygwPath finds the versitygw binary that .ci/run installs: in
// $KEYHOLE_VERSITYGW, in .ci/run's cache (~/.cache/keyhole-ci/bin), in
// $GOPATH/bin, or on PATH. Under CI=true a missing one fails the test.
func versitygwPath(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("KEYHOLE_VERSITYGW"); p != "" {
		candidates = append(candidates, p)
	}
	if dir, err := os.UserCacheDir(); err == nil {
		candidates = append(candidates, filepath.Join(dir, "keyhole-ci", "bin", "versitygw"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		candidates = append(candidates, filepath.Join(string(trimNL(out)), "bin", "versitygw"))
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("versitygw is required under CI=true (.ci/run installs it)")
	}
	t.Skip("versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	return ""
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// s3Server is a running versitygw with a posix backend in Root, serving
// TLS for "s3.test" under the upstream CA.
type s3Server struct {
	Addr string
	Root string
}

// startS3 runs versitygw with root credentials access and secret.
func startS3(t *testing.T, access, secretKey string) *s3Server {
	t.Helper()
	bin := versitygwPath(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cert := upstreamCA(t).leaf(t, []string{"s3.test"}, time.Now().Add(12*time.Hour))
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyDER, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := closedPort(t) // free now; versitygw takes it
	cmd := exec.Command(bin, "--access", access, "--secret", secretKey, "--port", addr,
		"--cert", certFile, "--key", keyFile, "--quiet", "posix", root)
	cmd.Env = baseEnv()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			t.Fatalf("versitygw exited: %s", out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen within 30s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &s3Server{Addr: addr, Root: root}
}

// fakeSTS speaks STS's AssumeRole Query API (the XML AssumeRoleResponse
// and ErrorResponse), handing out the credentials it was given as the
// session's, and records every request.
type fakeSTS struct {
	*upstream
	access, secret string
	mu             sync.Mutex
	calls          []stsCall
	tokens         []string
}

type stsCall struct {
	RoleArn, RoleSessionName, DurationSeconds, Policy, Authorization string
}

func newFakeSTS(t *testing.T, access, secretKey string) *fakeSTS {
	f := &fakeSTS{access: access, secret: secretKey}
	f.upstream = newUpstream(t, []string{"sts.test"}, http.HandlerFunc(f.serve))
	return f
}

func (f *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRole" || r.PostForm.Get("Version") != "2011-06-15" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	c := stsCall{r.PostForm.Get("RoleArn"), r.PostForm.Get("RoleSessionName"), r.PostForm.Get("DurationSeconds"),
		r.PostForm.Get("Policy"), r.Header.Get("Authorization")}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	tok := "FwoGZXIvYXdzTESTsession" + strconv.Itoa(len(f.calls)) + "SECRETtoken0123456789"
	f.tokens = append(f.tokens, tok)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	if c.RoleArn == "arn:aws:iam::123456789012:role/denied" {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>`)
		return
	}
	secs, _ := strconv.Atoi(c.DurationSeconds)
	exp := time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339)
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>keyhole</SourceIdentity>
    <AssumedRoleUser>
      <Arn>%s/%s</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:%s</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, c.RoleArn, c.RoleSessionName, c.RoleSessionName, f.access, f.secret, tok, exp)
}

func (f *fakeSTS) snapshot() ([]stsCall, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]stsCall(nil), f.calls...), append([]string(nil), f.tokens...)
}
