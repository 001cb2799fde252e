package sts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/credential/sigv4"
	"keyhole/rules"
	"keyhole/secret"
)

func TestSessionName(t *testing.T) {
	tests := []struct{ agent, id, want string }{
		{"reports", "abc123", "keyhole-reports-abc123"},
		{"reports", "", "keyhole-reports"},
		{"a b/c", "x:y", "keyhole-a-b-c-x-y"},
		{"agent.1_x", "id=1,2@3", "keyhole-agent.1_x-id=1,2@3"},
		{strings.Repeat("a", 64), "id", "keyhole-" + strings.Repeat("a", 56)},
	}
	for _, tc := range tests {
		if got := SessionName(tc.agent, tc.id); got != tc.want || len(got) > 64 {
			t.Errorf("SessionName(%q, %q) = %q, want %q", tc.agent, tc.id, got, tc.want)
		}
	}
}

func TestRegion(t *testing.T) {
	for host, want := range map[string]string{
		"sts.amazonaws.com": "us-east-1", "sts.eu-west-1.amazonaws.com": "eu-west-1", "sts.test": "us-east-1",
	} {
		if got := region(host); got != want {
			t.Errorf("region(%s) = %s, want %s", host, got, want)
		}
	}
}

func assumeRoleConfig(t *testing.T, endpoint string) *rules.AssumeRole {
	t.Helper()
	t.Setenv("STS_TEST_ID", "AKIDBASE000000000001")
	t.Setenv("STS_TEST_KEY", "base-secret-0123456789")
	set, err := rules.LoadData(filepath.Join(t.TempDir(), "k.yaml"), []byte(`secrets:
  AWS:
    kind: aws_sigv4
    access_key_id: env:STS_TEST_ID
    secret_access_key: env:STS_TEST_KEY
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/r
      duration: 1h
      sts_endpoint: `+endpoint+`
    hosts: [s3.amazonaws.com]
`))
	if err != nil {
		t.Fatal(err)
	}
	return set.Secrets["AWS"].AWS.AssumeRole
}

func TestAssumeRole(t *testing.T) {
	var form map[string][]string
	status := http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form = r.PostForm
		w.WriteHeader(status)
		if status != http.StatusOK {
			w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>base-secret-0123456789</Message></Error></ErrorResponse>`))
			return
		}
		w.Write([]byte(`<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>`))
	}))
	defer srv.Close()
	cfg := assumeRoleConfig(t, srv.URL)
	base := sigv4.Credentials{AccessKeyID: secret.FromString("AKIDBASE000000000001"), SecretAccessKey: secret.FromString("base-secret-0123456789")}
	creds, exp, err := AssumeRole(context.Background(), srv.Client(), cfg, base, "keyhole-a-b", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !creds.AccessKeyID.Equal("ASIAX") || !creds.SessionToken.Equal("tok") || !exp.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("the session's credentials or expiry were not read")
	}
	if form["RoleSessionName"][0] != "keyhole-a-b" || form["DurationSeconds"][0] != "3600" || form["RoleArn"][0] != "arn:aws:iam::123456789012:role/r" {
		t.Errorf("STS received %v", form)
	}
	status = http.StatusForbidden
	_, _, err = AssumeRole(context.Background(), srv.Client(), cfg, base, "keyhole-a-b", time.Now())
	if err == nil || err.Error() != "STS AssumeRole returned 403 (AccessDenied)" {
		t.Errorf("got %v, want the step, status and code only", err)
	}
}
