package mint

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/credential"
	"keyhole/rules"
)

func awsSet(t *testing.T) *rules.Set {
	t.Helper()
	t.Setenv("MINT_AWS_ID", "AKIAMINTTEST00000001")
	t.Setenv("MINT_AWS_KEY", "mint-secret-0123456789")
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "k.yaml"), []byte(`secrets:
  AWS:
    kind: aws_sigv4
    access_key_id: env:MINT_AWS_ID
    secret_access_key: env:MINT_AWS_KEY
    hosts: [s3.amazonaws.com]
  OTHER:
    source: env:MINT_AWS_KEY
    hosts: [s3.amazonaws.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestPresigned(t *testing.T) {
	set := awsSet(t)
	m, _ := New(Config{Client: http.DefaultClient})
	for q, want := range map[string]string{
		"X-Amz-Credential=%3C%3CAWS%3E%3E%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00": "AWS",
		"X-Amz-Credential=AKIAREAL%2F20240101%2Fus-east-1%2Fs3%2Faws4_request":                           "",
		"X-Amz-Credential=%3C%3COTHER%3E%3E%2F20240101":                                                  "",
		"X-Amz-Credential=%zz": "",
	} {
		name, ok := m.Presigned(set, q)
		if name != want || ok != (want != "") {
			t.Errorf("Presigned(%q) = %q %v, want %q", q, name, ok, want)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	set := awsSet(t)
	m, _ := New(Config{Client: http.DefaultClient})
	sig := strings.Repeat("0", 64)
	for _, tc := range []struct {
		name string
		auth []string
		want error
	}{
		{"no Authorization", nil, credential.ErrUnsupported},
		{"two Authorization", []string{"a", "b"}, credential.ErrUnsupported},
		{"a bearer", []string{"Bearer <<AWS>>"}, credential.ErrUnsupported},
		{"the placeholder outside the access key", []string{"AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-<<AWS>>, Signature=" + sig}, credential.ErrMalformed},
		{"another access key", []string{"AWS4-HMAC-SHA256 Credential=AKIAOTHER/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=" + sig}, credential.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "https://s3.amazonaws.com/b/k", nil)
			r.Header["Authorization"] = tc.auth
			_, err := m.Sign(context.Background(), set.Secrets["AWS"], credential.Who{Agent: "a"}, r)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSessionCache: one AssumeRole per agent and token, renewed 5 minutes
// before the session expires.
func TestSessionCache(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprintf(w, `<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>%s</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`,
			time.Unix(1_000_000+900, 0).UTC().Format(time.RFC3339))
	}))
	defer srv.Close()
	t.Setenv("MINT_AWS_ID", "AKIAMINTTEST00000001")
	t.Setenv("MINT_AWS_KEY", "mint-secret-0123456789")
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "k.yaml"), []byte(`secrets:
  AWS:
    kind: aws_sigv4
    access_key_id: env:MINT_AWS_ID
    secret_access_key: env:MINT_AWS_KEY
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/r
      sts_endpoint: `+srv.URL+`
    hosts: [s3.amazonaws.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	m, _ := New(Config{Client: srv.Client(), Now: func() time.Time { return now }})
	sign := func(who credential.Who) Signed {
		r, _ := http.NewRequest("GET", "https://s3.amazonaws.com/b/k", nil)
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=<<AWS>>/19700112/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="+strings.Repeat("0", 64))
		s, err := m.Sign(context.Background(), set.Secrets["AWS"], who, r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Header.Get("X-Amz-Security-Token") != "tok" {
			t.Fatal("no session token sent")
		}
		return s
	}
	a := credential.Who{Agent: "a", TokenID: "t1"}
	if s := sign(a); s.Session != "keyhole-a-t1" {
		t.Errorf("session %q", s.Session)
	}
	sign(a)
	if calls.Load() != 1 {
		t.Fatalf("%d AssumeRole calls for one agent and token, want 1", calls.Load())
	}
	sign(credential.Who{Agent: "a", TokenID: "t2"})
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want a session per token", calls.Load())
	}
	now = now.Add(10*time.Minute - time.Second) // 5m01s before expiry
	sign(a)
	if calls.Load() != 2 {
		t.Fatalf("renewed %d calls before the 5-minute margin", calls.Load())
	}
	now = now.Add(2 * time.Second)
	sign(a)
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want a new session within 5 minutes of expiry", calls.Load())
	}
}
