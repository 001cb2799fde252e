package sigv4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"keyhole/credential"
	"keyhole/secret"
)

// agentAuth is what an agent's SDK sends: the placeholder as access key
// and a signature made with a dummy secret, which keyhole replaces.
func agentAuth(scope, signed string) string {
	return "AWS4-HMAC-SHA256 Credential=<<AWS>>/" + scope + ", SignedHeaders=" + signed + ", Signature=" + strings.Repeat("0", 64)
}

func resign(t *testing.T, r *http.Request, creds Credentials, now time.Time) {
	t.Helper()
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(context.Background(), r, auth, creds, now); err != nil {
		t.Fatal(err)
	}
}

func signatureHex(t *testing.T, r *http.Request) string {
	t.Helper()
	a, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatalf("keyhole's Authorization does not parse: %v", err)
	}
	return a.Signature
}

// TestSignVectors re-signs the requests of AWS's published SigV4 test
// suite (get-vanilla, get-vanilla-query-order-key-case, post-vanilla) and
// the S3 documentation's GET Object example, and expects AWS's signatures.
func TestSignVectors(t *testing.T) {
	suite := Credentials{AccessKeyID: secret.FromString("AKIDEXAMPLE"), SecretAccessKey: secret.FromString("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")}
	s3doc := Credentials{AccessKeyID: secret.FromString("AKIAIOSFODNN7EXAMPLE"), SecretAccessKey: secret.FromString("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")}
	suiteTime := time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
	s3Time := time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, method, url string
		header            map[string]string
		signed, scope     string
		creds             Credentials
		now               time.Time
		want              string
	}{
		{"get-vanilla", "GET", "https://example.amazonaws.com/", nil,
			"host;x-amz-date", "20150830/us-east-1/service/aws4_request", suite, suiteTime,
			"5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", nil,
			"host;x-amz-date", "20150830/us-east-1/service/aws4_request", suite, suiteTime,
			"b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
		{"post-vanilla", "POST", "https://example.amazonaws.com/", nil,
			"host;x-amz-date", "20150830/us-east-1/service/aws4_request", suite, suiteTime,
			"5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
		{"s3 GET Object", "GET", "https://examplebucket.s3.amazonaws.com/test.txt",
			map[string]string{"Range": "bytes=0-9", "X-Amz-Content-Sha256": emptySHA256},
			"host;range;x-amz-content-sha256;x-amz-date", "20130524/us-east-1/s3/aws4_request", s3doc, s3Time,
			"f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(tc.method, tc.url, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			// The agent's stale date and its own session token go.
			r.Header.Set("X-Amz-Date", "20000101T000000Z")
			r.Header.Set("X-Amz-Security-Token", "agent-dummy-session")
			r.Header.Set("Authorization", agentAuth(tc.scope, tc.signed))
			// A header the agent did not sign stays unsigned.
			r.Header.Set("X-Unsigned", "1")
			agentHeader := r.Header
			resign(t, r, tc.creds, tc.now)
			if got := signatureHex(t, r); got != tc.want {
				t.Errorf("signature %s, want %s", got, tc.want)
			}
			if r.Header.Get("X-Amz-Date") != tc.now.Format("20060102T150405Z") {
				t.Errorf("X-Amz-Date %q, want the signing time", r.Header.Get("X-Amz-Date"))
			}
			if r.Header.Get("X-Amz-Security-Token") != "" {
				t.Error("the agent's X-Amz-Security-Token was sent with long-lived credentials")
			}
			if agentHeader.Get("X-Amz-Date") != "20000101T000000Z" {
				t.Error("Sign modified the agent's header in place")
			}
		})
	}
}

// TestSignChunked re-signs the S3 documentation's chunk-signed upload
// (66560 bytes of 'a' in chunks of 65536, 1024 and 0) and expects its seed
// and chunk signatures.
func TestSignChunked(t *testing.T) {
	creds := Credentials{AccessKeyID: secret.FromString("AKIAIOSFODNN7EXAMPLE"), SecretAccessKey: secret.FromString("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")}
	body := chunkedBody(strings.Repeat("f", 64), 65536, 1024, 0)
	r, _ := http.NewRequest("PUT", "https://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	r.Header.Set("Content-Encoding", "aws-chunked")
	r.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	r.Header.Set("X-Amz-Content-Sha256", StreamingSigned)
	r.Header.Set("Authorization", agentAuth("20130524/us-east-1/s3/aws4_request",
		"content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class"))
	if r.ContentLength != 66824 {
		t.Fatalf("the example body is %d bytes, want 66824", r.ContentLength)
	}
	resign(t, r, creds, time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))
	if got := signatureHex(t, r); got != "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9" {
		t.Errorf("seed signature %s", got)
	}
	// Read in small pieces: the signer must not depend on read sizes.
	var out bytes.Buffer
	buf := make([]byte, 777)
	for {
		n, err := r.Body.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	wantSigs := []string{
		"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		"b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
	}
	var expect bytes.Buffer
	for i, size := range []int{65536, 1024, 0} {
		fmt.Fprintf(&expect, "%x;chunk-signature=%s\r\n%s\r\n", size, wantSigs[i], strings.Repeat("a", size))
	}
	if !bytes.Equal(out.Bytes(), expect.Bytes()) {
		t.Errorf("the re-signed body differs from AWS's example (%d bytes, want %d)", out.Len(), expect.Len())
	}
}

// chunkedBody is a chunk-signed body of 'a's in chunks of sizes, each
// with signature sig.
func chunkedBody(sig string, sizes ...int) []byte {
	var b bytes.Buffer
	for _, size := range sizes {
		b.WriteString(strconv.FormatInt(int64(size), 16) + ";chunk-signature=" + sig + "\r\n")
		b.WriteString(strings.Repeat("a", size))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func TestSignSession(t *testing.T) {
	creds := Credentials{AccessKeyID: secret.FromString("ASIATESTSESSION"), SecretAccessKey: secret.FromString("sessionsecret"), SessionToken: secret.FromString("FwoGZXIvYXdzEXAMPLEtoken")}
	r, _ := http.NewRequest("GET", "https://bucket.s3.us-west-2.amazonaws.com/key", nil)
	r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload)
	r.Header.Set("Authorization", agentAuth("20240101/us-west-2/s3/aws4_request", "host;x-amz-content-sha256;x-amz-date"))
	resign(t, r, creds, time.Now())
	a, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID != "ASIATESTSESSION" || a.Region != "us-west-2" || a.Service != "s3" {
		t.Errorf("got key %q region %q service %q, want the session key and the agent's scope", a.AccessKeyID, a.Region, a.Service)
	}
	if !strings.Contains(strings.Join(a.SignedHeaders, ";"), "x-amz-security-token") || r.Header.Get("X-Amz-Security-Token") != "FwoGZXIvYXdzEXAMPLEtoken" {
		t.Error("the session token is not sent and signed")
	}
	if r.Header.Get("X-Amz-Content-Sha256") != UnsignedPayload {
		t.Error("the agent's payload hash was not kept")
	}
}

// TestSignHashesBody: a request signed without x-amz-content-sha256 (as
// SDKs do for services other than S3) gets its body hashed, and the body
// still reaches the upstream whole.
func TestSignHashesBody(t *testing.T) {
	creds := Credentials{AccessKeyID: secret.FromString("AKIDEXAMPLE"), SecretAccessKey: secret.FromString("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")}
	body := "Action=GetCallerIdentity&Version=2011-06-15"
	r, _ := http.NewRequest("POST", "https://sts.amazonaws.com/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Authorization", agentAuth("20240101/us-east-1/sts/aws4_request", "content-type;host;x-amz-date"))
	resign(t, r, creds, time.Now())
	got, _ := io.ReadAll(r.Body)
	if string(got) != body {
		t.Errorf("body %q, want %q", got, body)
	}
}

func TestSignRefusals(t *testing.T) {
	tests := []struct {
		name, sha string
		want      error
	}{
		{"signed trailer", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", credential.ErrUnsupported},
		{"sigv4a streaming", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD", credential.ErrUnsupported},
		{"garbage", "not-a-hash", credential.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("PUT", "https://s3.amazonaws.com/b/k", strings.NewReader("x"))
			r.Header.Set("X-Amz-Content-Sha256", tc.sha)
			r.Header.Set("Authorization", agentAuth("20240101/us-east-1/s3/aws4_request", "host"))
			auth, _ := ParseAuthorization(r.Header.Get("Authorization"))
			err := Sign(context.Background(), r, auth, Credentials{}, time.Now())
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

var fixedTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func testAWSCreds() aws.Credentials {
	return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}
}
