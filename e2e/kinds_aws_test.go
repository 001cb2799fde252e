package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const bigObjectSize = 21 << 20 // ≥ 20 MiB: multipart or chunked

// awsWorld is versitygw behind keyhole, with an aws_sigv4 secret (AWS)
// and one that assumes a role through a fake STS (AWS_STS), each for its
// own agent, and the files the clients upload.
type awsWorld struct {
	k       *keyhole
	s3      *s3Server
	echo    *upstream // s3echo.test: shows what keyhole sent
	sts     *fakeSTS
	small   string // path of a small file
	big     string // path of a bigObjectSize file
	bigSum  [32]byte
	policy  string // the session policy file
	opsEnv  string // keyhole env --agent ops, as a file
	taskEnv string // keyhole env --agent reports --ttl 15m, as a file
}

const (
	opsToken     = "ops-agent-token-TEST-0123456789"
	reportsToken = "reports-agent-token-TEST-0123456789"
)

func newAWSWorld(t *testing.T) *awsWorld {
	t.Helper()
	w := &awsWorld{s3: startS3(t, awsAccessKeyID, awsSecretKey)}
	w.sts = newFakeSTS(t, stsSessionKeyID, stsSessionSecret)
	w.echo = newUpstream(t, []string{"s3echo.test"}, nil)
	dir := t.TempDir()
	policy := filepath.Join(dir, "one-bucket.json")
	if err := os.WriteFile(policy, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::reports","arn:aws:s3:::reports/*"]}]}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.k = startKeyhole(t, fmt.Sprintf(`
secrets:
  AWS:
    kind: aws_sigv4
    access_key_id: env:AWS_REAL_ID
    secret_access_key: env:AWS_REAL_SECRET
    hosts: [s3.test, s3echo.test]
  AWS_STS:
    kind: aws_sigv4
    access_key_id: env:AWS_REAL_ID
    secret_access_key: env:AWS_REAL_SECRET
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/agent-reports
      duration: 15m
      policy: file:%s
      sts_endpoint: https://sts.test
    hosts: [s3.test, s3echo.test]
  AWS_DENIED:
    kind: aws_sigv4
    access_key_id: env:AWS_REAL_ID
    secret_access_key: env:AWS_REAL_SECRET
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/denied
      sts_endpoint: https://sts.test
    hosts: [s3.test, s3echo.test]
agents:
  ops:
    token: env:OPS_TOKEN
    secrets: [AWS, AWS_DENIED]
  reports:
    token: env:REPORTS_TOKEN
    secrets: [AWS_STS]
resolve:
  s3.test: %s
  sts.test: %s
  s3echo.test: %s
`, policy, w.s3.Addr, w.sts.Addr(), w.echo.Addr()),
		"AWS_REAL_ID="+awsAccessKeyID, "AWS_REAL_SECRET="+awsSecretKey, "OPS_TOKEN="+opsToken, "REPORTS_TOKEN="+reportsToken)
	t.Cleanup(func() {
		_, toks := w.sts.snapshot()
		out := w.k.stdout.String() + w.k.stderr.String()
		for i, tok := range toks {
			if strings.Contains(out, tok) {
				t.Errorf("keyhole's output holds STS session token #%d", i)
			}
		}
	})
	w.small = filepath.Join(dir, "small.txt")
	if err := os.WriteFile(w.small, []byte("hello from an agent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, bigObjectSize)
	_, _ = rand.Read(data)
	w.bigSum = sha256.Sum256(data)
	w.big = filepath.Join(dir, "big.bin")
	if err := os.WriteFile(w.big, data, 0o644); err != nil {
		t.Fatal(err)
	}
	settings := []string{"KEYHOLE_STATE_DIR=" + w.k.StateDir, "KEYHOLE_RULES=" + w.k.Rules, "KEYHOLE_LISTEN=" + w.k.Addr,
		"OPS_TOKEN=" + opsToken, "REPORTS_TOKEN=" + reportsToken}
	w.opsEnv = w.envFile(t, settings, "env", "--agent", "ops")
	w.taskEnv = w.envFile(t, settings, "env", "--agent", "reports", "--ttl", "15m")
	w.policy = policy
	return w
}

func (w *awsWorld) envFile(t *testing.T, settings []string, args ...string) string {
	t.Helper()
	out, stderr, code := runKeyhole(t, settings, args...)
	if code != 0 {
		t.Fatalf("keyhole %v: %s", args, stderr)
	}
	for _, want := range []string{"export AWS_ACCESS_KEY_ID='<<AWS", "export AWS_SECRET_ACCESS_KEY=", "export AWS_CA_BUNDLE="} {
		if !strings.Contains(out, want) {
			t.Fatalf("keyhole env lacks %q", want)
		}
	}
	p := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs script in bash after eval'ing envFile, with nothing else from
// the environment that could carry AWS settings.
func (w *awsWorld) run(t *testing.T, envFile, script string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "aws-config")
	// versitygw serves path-style buckets only.
	if err := os.WriteFile(cfg, []byte("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", "set -euo pipefail\neval \"$(cat \"$ENV_FILE\")\"\n"+script)
	var env []string
	for _, kv := range baseEnv() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "ENV_FILE="+envFile, "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		"SMALL="+w.small, "BIG="+w.big, "OUT="+t.TempDir(), "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\naudit:\n%s", err, redact(string(out)), redact(w.k.stdout.String()[max(0, len(w.k.stdout.String())-3000):]))
	}
	assertNoSecretIn(t, "client output", string(out))
	return string(out)
}

// stored checks the object versitygw holds for bucket/key.
func (w *awsWorld) stored(t *testing.T, bucket, key string, size int64, sum *[32]byte) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(w.s3.Root, bucket, key))
	if err != nil {
		t.Fatalf("versitygw holds no %s/%s: %v", bucket, key, err)
	}
	if int64(len(data)) != size || sum != nil && sha256.Sum256(data) != *sum {
		t.Errorf("%s/%s: versitygw holds %d bytes, want %d (or another content)", bucket, key, len(data), size)
	}
}

// awsCLI returns Debian's aws CLI (a pyenv shim may come first on PATH).
func awsCLI(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/aws", "aws"} {
		if exec.Command(p, "--version").Run() == nil {
			return p
		}
	}
	need(t, "aws", "--version")
	return ""
}

// debianPython returns /usr/bin/python3 when it has boto3.
func debianPython(t *testing.T) string {
	t.Helper()
	need(t, "/usr/bin/python3", "-c", "import boto3")
	return "/usr/bin/python3"
}

func TestAWSSigV4Clients(t *testing.T) {
	w := newAWSWorld(t)
	t.Run("aws CLI", func(t *testing.T) {
		aws := awsCLI(t)
		out := w.run(t, w.opsEnv, fmt.Sprintf(`aws() { %s --endpoint-url https://s3.test "$@"; }
aws s3 mb s3://cli
aws s3 cp "$SMALL" s3://cli/small.txt
aws s3 cp s3://cli/small.txt -
aws s3 ls s3://cli/
aws s3 cp "$BIG" s3://cli/big.bin
aws s3api head-object --bucket cli --key big.bin --query ContentLength
`, aws))
		if !strings.Contains(out, "hello from an agent") || !strings.Contains(out, "small.txt") || !strings.Contains(out, strconv.Itoa(bigObjectSize)) {
			t.Errorf("aws CLI output:\n%s", redact(out))
		}
		w.stored(t, "cli", "big.bin", bigObjectSize, &w.bigSum)
	})
	t.Run("boto3", func(t *testing.T) {
		py := debianPython(t)
		out := w.run(t, w.opsEnv, py+` - <<'EOF'
import os, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="https://s3.test", config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="boto")
s3.put_object(Bucket="boto", Key="small.txt", Body=open(os.environ["SMALL"], "rb").read())
print(s3.get_object(Bucket="boto", Key="small.txt")["Body"].read().decode())
print([o["Key"] for o in s3.list_objects_v2(Bucket="boto")["Contents"]])
s3.upload_file(os.environ["BIG"], "boto", "big.bin", Config=TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20))
print(s3.head_object(Bucket="boto", Key="big.bin")["ContentLength"])
EOF`)
		if !strings.Contains(out, "hello from an agent") || !strings.Contains(out, "'small.txt'") || !strings.Contains(out, strconv.Itoa(bigObjectSize)) {
			t.Errorf("boto3 output:\n%s", redact(out))
		}
		w.stored(t, "boto", "big.bin", bigObjectSize, &w.bigSum)
	})
	t.Run("curl --aws-sigv4", func(t *testing.T) {
		need(t, "curl")
		out := w.run(t, w.opsEnv, `c() { curl -sS -f --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$@"; }
c -X PUT https://s3.test/curl
c -T "$SMALL" https://s3.test/curl/small.txt
c https://s3.test/curl/small.txt
c "https://s3.test/curl?list-type=2"
echo
c -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$BIG" https://s3.test/curl/big.bin
`)
		if !strings.Contains(out, "hello from an agent") || !strings.Contains(out, "<Key>small.txt</Key>") {
			t.Errorf("curl output:\n%s", redact(out))
		}
		w.stored(t, "curl", "big.bin", bigObjectSize, &w.bigSum)
	})
	t.Run("chunk-signed upload", func(t *testing.T) {
		w.chunkSigned(t, "chunked", "big.bin")
	})
}

// chunkSigned uploads the big file as an agent SDK does with
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD: in 64 KiB chunks, each signed (here
// with a dummy, since keyhole signs each again).
func (w *awsWorld) chunkSigned(t *testing.T, bucket, key string) {
	t.Helper()
	c := w.k.GoClient(t, "ops", opsToken)
	do := func(method, url string, h map[string]string, body io.Reader, n int64) *http.Response {
		req, _ := http.NewRequest(method, url, body)
		req.ContentLength = n
		now := time.Now().UTC()
		req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
		signed := []string{"host", "x-amz-content-sha256", "x-amz-date"}
		for k, v := range h {
			req.Header.Set(k, v)
			signed = append(signed, strings.ToLower(k))
		}
		if n > 0 {
			signed = append(signed, "content-length")
		}
		sortStrings(signed)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=<<AWS>>/"+now.Format("20060102")+"/us-east-1/s3/aws4_request, SignedHeaders="+
			strings.Join(signed, ";")+", Signature="+strings.Repeat("0", 64))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := do("PUT", "https://s3.test/"+bucket, map[string]string{"X-Amz-Content-Sha256": emptyHash}, nil, 0)
	resp.Body.Close()
	data, err := os.ReadFile(w.big)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	dummy := strings.Repeat("0", 64)
	for off := 0; ; off += 64 << 10 {
		end := min(off+64<<10, len(data))
		fmt.Fprintf(&body, "%x;chunk-signature=%s\r\n", end-off, dummy)
		body.Write(data[off:end])
		body.WriteString("\r\n")
		if end == off {
			break
		}
	}
	resp = do("PUT", "https://s3.test/"+bucket+"/"+key, map[string]string{
		"X-Amz-Content-Sha256":         "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"Content-Encoding":             "aws-chunked",
		"X-Amz-Decoded-Content-Length": strconv.Itoa(len(data)),
	}, bytes.NewReader(body.Bytes()), int64(body.Len()))
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chunk-signed PUT: %d %s", resp.StatusCode, redact(string(msg)))
	}
	w.stored(t, bucket, key, int64(len(data)), &w.bigSum)
}

const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
