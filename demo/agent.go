package demo

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// agent sends the demo's requests through keyhole as an agent would: with
// curl when it is installed, running exactly the line the demo prints, and
// otherwise with a Go HTTP client configured the same way (keyhole as the
// proxy, keyhole's CA as the only root).
type agent struct {
	proxy, caFile string
	curl          string // curl's path; empty: use client
	client        *http.Client
}

// maxBody bounds a response the demo reads.
const maxBody = 64 << 10

func newAgent(proxyAddr, caFile string) (*agent, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("demo: keyhole's CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("demo: keyhole's CA %s holds no certificate", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	tr.TLSClientConfig.RootCAs = pool
	a := &agent{proxy: "http://" + proxyAddr, caFile: caFile, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	a.curl, _ = exec.LookPath("curl")
	return a, nil
}

// curlArgs are the arguments of the curl line for GET https://host/anything
// with the placeholder in Authorization.
func (a *agent) curlArgs(host string) []string {
	return []string{"-s", "--proxy", a.proxy, "--cacert", a.caFile,
		"-H", "Authorization: Bearer " + placeholder, "https://" + host + "/anything"}
}

// curlLine is that line, quoted for a POSIX shell.
func (a *agent) curlLine(host string) string {
	var b strings.Builder
	b.WriteString("curl")
	for _, arg := range a.curlArgs(host) {
		b.WriteByte(' ')
		if strings.ContainsAny(arg, " '<>$\"\\") {
			arg = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
		}
		b.WriteString(arg)
	}
	return b.String()
}

// get sends GET https://host/anything with the placeholder in
// Authorization and returns the status and the body (at most 64 KiB).
func (a *agent) get(ctx context.Context, host string) (int, string, error) {
	if a.curl != "" {
		return a.getCurl(ctx, host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/anything", nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+placeholder)
	req.Header.Set("User-Agent", "keyhole-demo")
	res, err := a.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("demo: GET https://%s/anything: %w", host, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return 0, "", fmt.Errorf("demo: GET https://%s/anything: %w", host, err)
	}
	return res.StatusCode, strings.TrimSpace(string(body)), nil
}

// getCurl runs the curl line (without the user's ~/.curlrc, and with the
// status appended after the body).
func (a *agent) getCurl(ctx context.Context, host string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	args := append([]string{"-q", "-S", "-w", "\n%{http_code}"}, a.curlArgs(host)...)
	cmd := exec.CommandContext(ctx, a.curl, args...)
	cmd.Env = CleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, "", fmt.Errorf("demo: %s: %v: %s", a.curlLine(host), err, strings.TrimSpace(stderr.String()))
	}
	trimmed := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(trimmed, '\n')
	body, code := trimmed[:max(i, 0)], trimmed[i+1:]
	if len(body) > maxBody {
		body = body[:maxBody]
	}
	status, err := strconv.Atoi(code)
	if err != nil {
		return 0, "", fmt.Errorf("demo: %s: no status in curl's output", a.curlLine(host))
	}
	return status, strings.TrimSpace(body), nil
}
