package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// proxyCreds returns the agent name and token in an env file's HTTPS_PROXY.
func proxyCreds(t *testing.T, envFile string) (string, string) {
	t.Helper()
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "export HTTPS_PROXY="); ok {
			u, err := url.Parse(strings.Trim(v, "'"))
			if err != nil || u.User == nil {
				t.Fatalf("HTTPS_PROXY is not a URL with credentials")
			}
			pass, _ := u.User.Password()
			return u.User.Username(), pass
		}
	}
	t.Fatal("the env file has no HTTPS_PROXY")
	return "", ""
}

// sigv4Request sends a request signed as an agent's SDK signs it, with
// key as the access key and a dummy signature, through keyhole.
func sigv4Request(t *testing.T, c *http.Client, method, rawURL, key string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("X-Amz-Content-Sha256", emptyHash)
	if key != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+key+"/"+now.Format("20060102")+
			"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="+strings.Repeat("1", 64))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func refusalOf(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("not a JSON refusal: %s", redact(body))
	}
	return m
}

func TestAWSSigV4Refusals(t *testing.T) {
	w := newAWSWorld(t)
	c := w.k.GoClient(t, "ops", opsToken)
	sig := strings.Repeat("2", 64)
	day := time.Now().UTC().Format("20060102")
	tests := []struct {
		name   string
		url    string
		key    string
		header map[string]string
		status int
		reason string
	}{
		{"malformed scope", "https://s3echo.test/b/k", "", map[string]string{
			"Authorization": "AWS4-HMAC-SHA256 Credential=<<AWS>>/" + day + "/us-east-1/aws4_request, SignedHeaders=host, Signature=" + sig}, 400, "bad_request"},
		{"no signature", "https://s3echo.test/b/k", "", map[string]string{
			"Authorization": "AWS4-HMAC-SHA256 Credential=<<AWS>>/" + day + "/us-east-1/s3/aws4_request, SignedHeaders=host"}, 400, "bad_request"},
		{"sigv4a", "https://s3echo.test/b/k", "", map[string]string{
			"Authorization":    "AWS4-ECDSA-P256-SHA256 Credential=<<AWS>>/" + day + "/s3/aws4_request, SignedHeaders=host;x-amz-region-set, Signature=" + sig,
			"X-Amz-Region-Set": "*"}, 403, "unsupported_signature"},
		{"presigned URL", "https://s3echo.test/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%3C%3CAWS%3E%3E%2F" + day +
			"%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=" + day + "T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=" + sig, "", nil, 403, "unsupported_signature"},
		{"placeholder as a bearer token", "https://s3echo.test/b/k", "", map[string]string{"Authorization": "Bearer <<AWS>>"}, 403, "unsupported_signature"},
		{"signed chunks with a trailer", "https://s3echo.test/b/k", "<<AWS>>", map[string]string{
			"X-Amz-Content-Sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"}, 403, "unsupported_signature"},
		{"a secret the agent may not use", "https://s3echo.test/b/k", "<<AWS_STS>>", nil, 403, "agent_not_allowed"},
		{"two values", "https://s3echo.test/b/k", "<<AWS>>", map[string]string{"X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD, UNSIGNED-PAYLOAD"}, 400, "bad_request"},
		{"a host the secret may not go to", "https://evil.test/b/k", "<<AWS>>", nil, 403, "host_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.echo.Hits()
			status, body, _ := sigv4Request(t, c, "GET", tc.url, tc.key, tc.header)
			if status != tc.status {
				t.Fatalf("got %d %s, want %d", status, redact(body), tc.status)
			}
			m := refusalOf(t, body)
			if m["reason"] != tc.reason {
				t.Errorf("reason %v, want %s (%v)", m["reason"], tc.reason, m["error"])
			}
			if w.echo.Hits() != before {
				t.Error("the request reached the upstream")
			}
			assertNoSecretIn(t, "the refusal", body)
		})
	}

	t.Run("re-signed with the real key, scrubbed in the response", func(t *testing.T) {
		status, body, h := sigv4Request(t, c, "GET", "https://s3echo.test/b/k", "<<AWS>>", nil)
		if status != http.StatusOK {
			t.Fatalf("got %d %s", status, redact(body))
		}
		got := w.echo.Last(t).Header
		if !strings.Contains(got.Get("Authorization"), "Credential="+awsAccessKeyID+"/") || strings.Contains(got.Get("Authorization"), strings.Repeat("1", 64)) {
			t.Errorf("the upstream did not receive a signature by the real key")
		}
		if got.Get("X-Amz-Security-Token") != "" {
			t.Error("a security token was sent with long-lived keys")
		}
		// Three secrets share the key here, so any of their placeholders
		// may stand for it.
		if e := h.Get("X-Echo-Authorization"); !strings.Contains(e, "Credential=<<AWS") || strings.Contains(e, awsAccessKeyID) {
			t.Errorf("the echoed access key was not scrubbed: %s", redact(h.Get("X-Echo-Authorization")))
		}
	})

	t.Run("a real-looking key that is not a placeholder passes unchanged", func(t *testing.T) {
		status, body, _ := sigv4Request(t, c, "GET", "https://s3echo.test/b/k", "AKIAIOSFODNN7EXAMPLE", nil)
		if status != http.StatusOK {
			t.Fatalf("got %d %s", status, redact(body))
		}
		a := w.echo.Last(t).Header.Get("Authorization")
		if !strings.Contains(a, "Credential=AKIAIOSFODNN7EXAMPLE/") || !strings.Contains(a, "Signature="+strings.Repeat("1", 64)) {
			t.Errorf("keyhole changed a signature it does not own: %s", a)
		}
	})
}

func TestAWSAssumeRole(t *testing.T) {
	w := newAWSWorld(t)
	agent, token := proxyCreds(t, w.taskEnv)
	if agent != "reports" {
		t.Fatalf("agent %q", agent)
	}
	c := w.k.GoClient(t, agent, token)

	// versitygw accepts only session tokens it issued itself, so the
	// session's requests go to the echo upstream, which checks that they
	// carry a valid signature by the session's key.
	t.Run("requests signed by an STS session narrowed to one bucket", func(t *testing.T) {
		for _, m := range []string{"PUT", "GET", "GET"} {
			before := w.echo.Hits()
			status, body, _ := sigv4Request(t, c, m, "https://s3echo.test/reports/q3.csv", "<<AWS_STS>>", nil)
			if status != http.StatusOK || w.echo.Hits() != before+1 {
				t.Fatalf("%s: got %d %s", m, status, redact(body))
			}
			got := w.echo.Last(t)
			if err := verifySigV4(got, stsSessionKeyID, stsSessionSecret); err != nil {
				t.Errorf("%s: %v", m, err)
			}
		}
		calls, _ := w.sts.snapshot()
		if len(calls) != 1 {
			t.Fatalf("STS received %d AssumeRole calls, want 1 for the whole task", len(calls))
		}
		call := calls[0]
		policy, _ := os.ReadFile(w.policy)
		if call.RoleArn != "arn:aws:iam::123456789012:role/agent-reports" || call.DurationSeconds != "900" ||
			strings.TrimSpace(call.Policy) != strings.TrimSpace(string(policy)) {
			t.Errorf("STS received role %s duration %s policy %q, want agent-reports, 900 and the policy file", call.RoleArn, call.DurationSeconds, call.Policy)
		}
		if !strings.Contains(call.Authorization, "Credential="+awsAccessKeyID+"/") || !strings.Contains(call.Authorization, "/sts/aws4_request") {
			t.Errorf("AssumeRole was not signed with the secret's own key for sts")
		}
		rec := w.k.WaitAudit(t, func(r map[string]any) bool { return r["path"] == "/reports/q3.csv" && r["method"] == "PUT" })
		id, _ := rec["token_id"].(string)
		if id == "" || call.RoleSessionName != "keyhole-reports-"+id || rec["session"] != call.RoleSessionName {
			t.Errorf("session name %q, audit session %v token %q; want keyhole-reports-TOKENID in both", call.RoleSessionName, rec["session"], id)
		}
	})

	t.Run("the session token is sent and scrubbed", func(t *testing.T) {
		status, body, _ := sigv4Request(t, c, "GET", "https://s3echo.test/b/k", "<<AWS_STS>>", nil)
		if status != http.StatusOK {
			t.Fatalf("got %d %s", status, redact(body))
		}
		_, toks := w.sts.snapshot()
		if len(toks) == 0 || w.echo.Last(t).Header.Get("X-Amz-Security-Token") != toks[len(toks)-1] {
			t.Fatal("the upstream did not receive the session token")
		}
		if !strings.Contains(body, `"X-Amz-Security-Token":["<<AWS_STS>>"]`) {
			t.Errorf("the echoed session token was not scrubbed")
		}
		for i, tok := range toks {
			if strings.Contains(body, tok) {
				t.Errorf("the response holds session token #%d", i)
			}
		}
	})

	t.Run("STS AccessDenied", func(t *testing.T) {
		before := w.echo.Hits()
		status, body, _ := sigv4Request(t, w.k.GoClient(t, "ops", opsToken), "GET", "https://s3echo.test/b/k", "<<AWS_DENIED>>", nil)
		if status != http.StatusBadGateway {
			t.Fatalf("got %d %s, want 502", status, redact(body))
		}
		m := refusalOf(t, body)
		if msg, _ := m["error"].(string); m["reason"] != "secret_unavailable" || !strings.Contains(msg, "STS AssumeRole returned 403 (AccessDenied)") {
			t.Errorf("got %v: %v", m["reason"], m["error"])
		}
		if w.echo.Hits() != before {
			t.Error("the request reached the upstream without credentials")
		}
	})
}

// verifySigV4 checks, with the SDK's signer, that r (as an upstream
// received it) carries a valid SigV4 signature by key id and secret.
func verifySigV4(r *http.Request, id, secretKey string) error {
	a := r.Header.Get("Authorization")
	if !strings.Contains(a, "Credential="+id+"/") {
		return fmt.Errorf("not signed by access key %s", id)
	}
	signedPart := a[strings.Index(a, "SignedHeaders=")+len("SignedHeaders="):]
	signedPart = signedPart[:strings.Index(signedPart, ",")]
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	req, _ := http.NewRequest(r.Method, "https://"+r.Host+r.URL.RequestURI(), nil)
	for _, name := range strings.Split(signedPart, ";") {
		if name != "host" && name != "x-amz-date" {
			req.Header[http.CanonicalHeaderKey(name)] = r.Header.Values(name)
		}
	}
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: secretKey, SessionToken: r.Header.Get("X-Amz-Security-Token")}
	req.Header.Del("X-Amz-Security-Token")
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, r.Header.Get("X-Amz-Content-Sha256"), "s3", "us-east-1", when,
		func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }); err != nil {
		return err
	}
	if want := req.Header.Get("Authorization"); want != a {
		return fmt.Errorf("the signature does not verify with the session's key")
	}
	return nil
}

// TestAWSMalformedChunks: a chunk-signed upload whose chunks do not parse
// is cut off with 400 bad_request rather than passed on unsigned.
func TestAWSMalformedChunks(t *testing.T) {
	w := newAWSWorld(t)
	c := w.k.GoClient(t, "ops", opsToken)
	now := time.Now().UTC()
	body := "10;chunk-signature=short\r\n0123456789abcdef\r\n0;chunk-signature=" + strings.Repeat("0", 64) + "\r\n\r\n"
	req, _ := http.NewRequest("PUT", "https://s3echo.test/b/bad.bin", strings.NewReader(body))
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "16")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=<<AWS>>/"+now.Format("20060102")+
		"/us-east-1/s3/aws4_request, SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date, Signature="+strings.Repeat("1", 64))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || refusalOf(t, string(got))["reason"] != "bad_request" {
		t.Fatalf("got %d %s, want 400 bad_request", resp.StatusCode, redact(string(got)))
	}
}
