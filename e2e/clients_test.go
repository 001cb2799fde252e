package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// request is what a test asks a client to send through keyhole.
type request struct {
	Method    string
	URL       string
	Header    [][2]string // in order; a name may repeat
	BasicUser string      // with BasicPass: the client's own Basic auth (curl -u)
	BasicPass string
	ProxyUser string // agent name and token for Proxy-Authorization
	ProxyPass string
	Body      string
}

// response is what the client received.
type response struct {
	Status int
	Header http.Header
	Body   string
	Err    string // the client's error when it got no HTTP response
}

// refusal decodes a JSON refusal body.
func (r response) refusal(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Body), &m); err != nil {
		t.Fatalf("status %d: body is not a JSON refusal: %v", r.Status, err)
	}
	for _, k := range []string{"error", "reason", "request_id"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("refusal lacks %q", k)
		}
	}
	return m
}

// client drives keyhole with one real HTTP client.
type client interface {
	Name() string
	Do(t *testing.T, k *keyhole, r request) response
}

// clients returns every client this machine has; under CI=true a missing
// one fails the test instead of being skipped.
func clients(t *testing.T) []client {
	t.Helper()
	return []client{curlClient{}, pythonClient{}, goClient{}}
}

// need fails (under CI) or skips the test when tool is missing.
func need(t *testing.T, tool string, check ...string) {
	t.Helper()
	_, err := exec.LookPath(tool)
	if err == nil && len(check) > 0 {
		err = exec.Command(tool, check...).Run()
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", tool, err)
	}
	t.Skipf("%s is not available: %v", tool, err)
}

// curlClient uses curl with --proxy and --cacert.
type curlClient struct{}

func (curlClient) Name() string { return "curl" }

func (curlClient) Do(t *testing.T, k *keyhole, r request) response {
	t.Helper()
	need(t, "curl")
	dir := t.TempDir()
	headFile, bodyFile := filepath.Join(dir, "head"), filepath.Join(dir, "body")
	args := []string{"-sS", "--max-time", "20", "--proxy", "http://" + k.Addr, "--cacert", k.CAFile,
		"-D", headFile, "-o", bodyFile, "-w", "%{http_code}"}
	if r.Method != "" {
		args = append(args, "-X", r.Method)
	}
	if r.Method == http.MethodHead {
		args = append(args[:len(args)-2], "-I")
	}
	for _, h := range r.Header {
		args = append(args, "-H", h[0]+": "+h[1])
	}
	if r.BasicUser != "" {
		args = append(args, "-u", r.BasicUser+":"+r.BasicPass)
	}
	if r.ProxyUser != "" {
		args = append(args, "--proxy-user", r.ProxyUser+":"+r.ProxyPass)
	}
	if r.Body != "" {
		args = append(args, "--data-binary", r.Body)
	}
	args = append(args, r.URL)
	cmd := exec.Command("curl", args...)
	cmd.Env = baseEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil && code == 0 {
		return response{Err: "curl: " + err.Error() + ": " + stderr.String()}
	}
	head, _ := os.ReadFile(headFile)
	body, _ := os.ReadFile(bodyFile)
	return response{Status: code, Header: parseHead(head), Body: string(body)}
}

// parseHead parses curl's -D output, keeping the last response's header
// (a CONNECT response precedes it).
func parseHead(b []byte) http.Header {
	blocks := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n")
	var last string
	for _, bl := range blocks {
		if strings.TrimSpace(bl) != "" {
			last = bl
		}
	}
	h := http.Header{}
	lines := strings.Split(last, "\n")
	for _, l := range lines[min(1, len(lines)):] {
		if name, v, ok := strings.Cut(l, ":"); ok {
			h.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(v))
		}
	}
	return h
}

// pythonClient uses Python requests with HTTPS_PROXY and
// REQUESTS_CA_BUNDLE.
type pythonClient struct{}

func (pythonClient) Name() string { return "python-requests" }

const pythonScript = `
import json, sys, requests
a = json.load(sys.stdin)
auth = (a["user"], a["pass"]) if a["user"] else None
s = requests.Session()
r = s.request(a["method"] or "GET", a["url"], headers=a["headers"], auth=auth,
              data=a["body"].encode() if a["body"] else None, timeout=20, allow_redirects=False)
json.dump({"status": r.status_code, "headers": dict(r.headers), "body": r.content.decode("utf-8", "replace")}, sys.stdout)
`

func (pythonClient) Do(t *testing.T, k *keyhole, r request) response {
	t.Helper()
	need(t, "python3", "-c", "import requests")
	headers := map[string]string{}
	for _, h := range r.Header {
		headers[h[0]] = h[1]
	}
	in, _ := json.Marshal(map[string]any{
		"method": r.Method, "url": r.URL, "headers": headers,
		"user": r.BasicUser, "pass": r.BasicPass, "body": r.Body,
	})
	cmd := exec.Command("python3", "-c", pythonScript)
	proxy := k.ProxyURL(r.ProxyUser, r.ProxyPass)
	cmd.Env = append(baseEnv(), "HTTPS_PROXY="+proxy, "HTTP_PROXY="+proxy, "REQUESTS_CA_BUNDLE="+k.CAFile)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return response{Err: "python requests: " + err.Error() + ": " + lastLine(stderr.String())}
	}
	return decodeResponse(t, "python", out)
}

// decodeResponse decodes what a client script printed: a JSON object with
// status, headers (one value each) and body.
func decodeResponse(t *testing.T, client string, out []byte) response {
	t.Helper()
	var res struct {
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%s output: %v", client, err)
	}
	h := http.Header{}
	for name, v := range res.Headers {
		h.Set(name, v)
	}
	return response{Status: res.Status, Header: h, Body: res.Body}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// goClient uses net/http with the proxy and keyhole's CA.
type goClient struct{}

func (goClient) Name() string { return "go-net/http" }

func (goClient) Do(t *testing.T, k *keyhole, r request) response {
	t.Helper()
	c := k.GoClient(t, r.ProxyUser, r.ProxyPass)
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, r.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range r.Header {
		if strings.EqualFold(h[0], "Host") {
			req.Host = h[1]
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	if r.BasicUser != "" {
		req.SetBasicAuth(r.BasicUser, r.BasicPass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{Err: "go client: " + err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("go client: reading body: %v", err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// GoClient returns an http.Client that uses keyhole as its proxy and
// trusts keyhole's CA.
func (k *keyhole) GoClient(t *testing.T, user, pass string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("keyhole's ca.pem holds no certificate")
	}
	proxyURL, _ := url.Parse(k.ProxyURL(user, pass))
	tr := &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport: tr,
		Timeout:   20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
