// Package sigv4 re-signs AWS Signature Version 4 requests for the
// aws_sigv4 kind: it parses the agent's Authorization header (signed with
// a placeholder access key and a dummy secret), and signs the request again
// with the real or STS session credentials, keeping the agent's region,
// service, signed headers and payload hash. Chunk-signed uploads
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) are re-signed chunk by chunk as they
// stream. Signing itself is github.com/aws/aws-sdk-go-v2/aws/signer/v4;
// this package only decides what to sign.
//
// Presigned URLs and SigV4a cannot be re-signed (the signature is in the
// URL, or made with a key derived from the secret that only AWS
// reproduces): they fail with credential.ErrUnsupported.
//
// See https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html
// and https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html.
package sigv4

import (
	"fmt"
	"strings"

	"keyhole/credential"
)

// Algorithm is the only signing algorithm keyhole re-signs.
const Algorithm = "AWS4-HMAC-SHA256"

// maxAuthorization bounds the Authorization header parsed.
const maxAuthorization = 8 << 10

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	// AccessKeyID is the credential's access key: a placeholder, for
	// keyhole to re-sign.
	AccessKeyID string
	// Date (YYYYMMDD), Region and Service are the credential scope.
	Date, Region, Service string
	// SignedHeaders are the lower-case names the agent signed, sorted as
	// it listed them.
	SignedHeaders []string
	// Signature is the agent's signature (hex).
	Signature string
}

// malformed returns an error wrapping credential.ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: the AWS Signature V4 Authorization header %s", credential.ErrMalformed, fmt.Sprintf(format, args...))
}

// unsupported returns an error wrapping credential.ErrUnsupported.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", credential.ErrUnsupported, fmt.Sprintf(format, args...))
}

// ParseAuthorization parses v, an Authorization header value of the form
//
//	AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request,
//	SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// Another algorithm (SigV4a's AWS4-ECDSA-P256-SHA256) is
// credential.ErrUnsupported; anything else that does not parse is
// credential.ErrMalformed. Errors never quote the value.
func ParseAuthorization(v string) (Authorization, error) {
	var a Authorization
	if len(v) > maxAuthorization {
		return a, malformed("is longer than %d bytes", maxAuthorization)
	}
	alg, rest, ok := strings.Cut(v, " ")
	if !ok {
		return a, malformed("has no algorithm")
	}
	if alg != Algorithm {
		if strings.HasPrefix(alg, "AWS4-ECDSA-") {
			return a, unsupported("SigV4a (%s) cannot be re-signed by keyhole; configure the SDK for SigV4 (AWS4-HMAC-SHA256)", alg)
		}
		return a, unsupported("the algorithm is not %s", Algorithm)
	}
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return a, malformed("has a part without '='")
		}
		switch key {
		case "Credential":
			if seen[0] {
				return a, malformed("has two Credential parts")
			}
			seen[0] = true
			if err := a.parseCredential(val); err != nil {
				return a, err
			}
		case "SignedHeaders":
			if seen[1] {
				return a, malformed("has two SignedHeaders parts")
			}
			seen[1] = true
			if err := a.parseSignedHeaders(val); err != nil {
				return a, err
			}
		case "Signature":
			if seen[2] {
				return a, malformed("has two Signature parts")
			}
			seen[2] = true
			if len(val) != 64 || strings.Trim(val, "0123456789abcdef") != "" {
				return a, malformed("has a Signature that is not 64 lower-case hex digits")
			}
			a.Signature = val
		default:
			return a, malformed("has an unknown part (want Credential, SignedHeaders and Signature)")
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return a, malformed("lacks Credential, SignedHeaders or Signature")
	}
	return a, nil
}

// parseCredential parses "AKID/DATE/REGION/SERVICE/aws4_request".
func (a *Authorization) parseCredential(v string) error {
	parts := strings.Split(v, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return malformed("has a Credential that is not ACCESS_KEY/DATE/REGION/SERVICE/aws4_request")
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]
	switch {
	case a.AccessKeyID == "":
		return malformed("has an empty access key")
	case len(a.Date) != 8 || strings.Trim(a.Date, "0123456789") != "":
		return malformed("has a credential date that is not YYYYMMDD")
	case !scopeName(a.Region):
		return malformed("has an invalid region")
	case !scopeName(a.Service):
		return malformed("has an invalid service")
	}
	return nil
}

// scopeName reports whether s can be a region or service name.
func scopeName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// maxSignedHeaders bounds the headers one signature may cover.
const maxSignedHeaders = 64

// parseSignedHeaders parses "host;x-amz-date;...".
func (a *Authorization) parseSignedHeaders(v string) error {
	names := strings.Split(v, ";")
	if len(names) > maxSignedHeaders {
		return malformed("signs more than %d headers", maxSignedHeaders)
	}
	host := false
	for _, n := range names {
		if n == "" || !token(n) || strings.ToLower(n) != n {
			return malformed("has SignedHeaders that are not lower-case header names separated by ';'")
		}
		host = host || n == "host"
	}
	if !host {
		return malformed("does not sign the host header")
	}
	a.SignedHeaders = names
	return nil
}

// token reports whether s is an RFC 9110 token.
func token(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
