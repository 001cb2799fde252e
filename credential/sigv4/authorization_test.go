package sigv4

import (
	"errors"
	"io"
	"strings"
	"testing"

	"keyhole/credential"
)

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	good := "AWS4-HMAC-SHA256 Credential=<<AWS>>/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + sig
	a, err := ParseAuthorization(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID != "<<AWS>>" || a.Date != "20240101" || a.Region != "us-east-1" || a.Service != "s3" ||
		strings.Join(a.SignedHeaders, ";") != "host;x-amz-date" || a.Signature != sig {
		t.Errorf("got %+v", a)
	}
	// curl writes no spaces after the commas.
	if _, err := ParseAuthorization(strings.ReplaceAll(good, ", ", ",")); err != nil {
		t.Errorf("without spaces: %v", err)
	}
	bad := []struct {
		name, v string
		want    error
	}{
		{"sigv4a", "AWS4-ECDSA-P256-SHA256 Credential=<<AWS>>/20240101/s3/aws4_request, SignedHeaders=host;x-amz-region-set, Signature=" + sig, credential.ErrUnsupported},
		{"other algorithm", "AWS3 foo", credential.ErrUnsupported},
		{"no algorithm", "AWS4-HMAC-SHA256", credential.ErrMalformed},
		{"four scope parts", strings.Replace(good, "/s3/", "/", 1), credential.ErrMalformed},
		{"wrong terminator", strings.Replace(good, "aws4_request", "aws5_request", 1), credential.ErrMalformed},
		{"bad date", strings.Replace(good, "20240101", "2024-1-1", 1), credential.ErrMalformed},
		{"bad region", strings.Replace(good, "us-east-1", "US EAST", 1), credential.ErrMalformed},
		{"empty key", strings.Replace(good, "<<AWS>>", "", 1), credential.ErrMalformed},
		{"no host signed", strings.Replace(good, "host;x-amz-date", "x-amz-date", 1), credential.ErrMalformed},
		{"upper-case header", strings.Replace(good, "host;x-amz-date", "host;X-Amz-Date", 1), credential.ErrMalformed},
		{"empty header name", strings.Replace(good, "host;x-amz-date", "host;;x-amz-date", 1), credential.ErrMalformed},
		{"short signature", strings.Replace(good, sig, "abc", 1), credential.ErrMalformed},
		{"no signature", strings.Replace(good, ", Signature="+sig, "", 1), credential.ErrMalformed},
		{"two credentials", good + ", Credential=x/20240101/us-east-1/s3/aws4_request", credential.ErrMalformed},
		{"unknown part", good + ", Extra=1", credential.ErrMalformed},
		{"part without =", good + ", junk", credential.ErrMalformed},
		{"too long", good + strings.Repeat(" ", maxAuthorization), credential.ErrMalformed},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAuthorization(tc.v)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzParseAuthorization: any header value parses or fails with one of
// the two classified errors, never panics, and an error never repeats the
// value's access key.
func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=<<AWS>>/20240101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("0", 64))
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAREALKEY/20240101/us-east-1/s3/aws4_request,SignedHeaders=host,Signature=")
	f.Add("AWS4-ECDSA-P256-SHA256 Credential=<<AWS>>/20240101/s3/aws4_request")
	f.Add("AWS4-HMAC-SHA256 ,,,===")
	f.Fuzz(func(t *testing.T, v string) {
		a, err := ParseAuthorization(v)
		if err != nil {
			if !errors.Is(err, credential.ErrMalformed) && !errors.Is(err, credential.ErrUnsupported) {
				t.Fatalf("unclassified error %v", err)
			}
			if strings.Contains(v, "SECRETKEY") && strings.Contains(err.Error(), "SECRETKEY") {
				t.Fatal("the error repeats the header")
			}
			return
		}
		if a.AccessKeyID == "" || len(a.Signature) != 64 || len(a.SignedHeaders) == 0 {
			t.Fatalf("accepted an incomplete header: %+v", a)
		}
	})
}

// TestChunkSignerMalformed: broken aws-chunked bodies fail the read with
// an error, never a panic or an endless loop.
func TestChunkSignerMalformed(t *testing.T) {
	sig := strings.Repeat("0", 64)
	for _, body := range []string{
		"",
		"10;chunk-signature=" + sig + "\r\nshort",
		"zz;chunk-signature=" + sig + "\r\n\r\n",
		"10\r\n0123456789abcdef\r\n",
		"ffffffff;chunk-signature=" + sig + "\r\n",
		"4;chunk-signature=" + sig + "\r\nabcdXX",
		strings.Repeat("1", 5000),
	} {
		c := newChunkSigner(io.NopCloser(strings.NewReader(body)), testAWSCreds(), "us-east-1", "s3", fixedTime, make([]byte, 32))
		if _, err := io.ReadAll(c); err == nil {
			t.Errorf("body %q: no error", clip(body))
		}
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
