package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"keyhole/credential"
	"keyhole/secret"
)

// Credentials are what a request is signed with: long-lived keys, or an
// STS session's (with SessionToken).
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken secret.Value
}

// The x-amz-content-sha256 values keyhole understands besides a hex
// SHA-256 of the body.
const (
	UnsignedPayload          = "UNSIGNED-PAYLOAD"
	StreamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// MaxHashedBody bounds the body keyhole reads to hash, for a request
// signed without an x-amz-content-sha256 header (services other than S3
// sign the body's hash without sending it). Larger is ErrUnsupported.
const MaxHashedBody = 8 << 20

// signer is the SDK's signer; it holds no state but a key cache.
var signer = v4.NewSigner()

// Sign signs out again, in place, with creds at now: a fresh X-Amz-Date,
// the agent's region, service and signed headers, its payload hash, and
// X-Amz-Security-Token for a session (an agent's own is removed). A
// chunk-signed body is wrapped to be re-signed chunk by chunk as it is
// read. auth is out's parsed Authorization. The header is copied, never
// modified in place.
func Sign(ctx context.Context, out *http.Request, auth Authorization, creds Credentials, now time.Time) error {
	payload, err := payloadHash(out)
	if err != nil {
		return err
	}
	// S3 wants the payload hash in a header, and refuses a request
	// without one; curl --aws-sigv4 sends none. keyhole hashed the body,
	// so it can add it.
	addHash := auth.Service == "s3" && out.Header.Get("X-Amz-Content-Sha256") == ""
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	u := *out.URL
	shadow := &http.Request{Method: out.Method, URL: &u, Host: host, Header: http.Header{}}
	for _, name := range auth.SignedHeaders {
		switch name {
		case "host", "authorization", "x-amz-date", "x-amz-security-token":
			// Set by the signer.
		case "content-length":
			shadow.ContentLength = out.ContentLength
		default:
			key := textproto.CanonicalMIMEHeaderKey(name)
			if vs, ok := out.Header[key]; ok {
				shadow.Header[key] = vs
			}
		}
	}
	if addHash {
		shadow.Header.Set("X-Amz-Content-Sha256", payload)
	}
	ac := aws.Credentials{
		AccessKeyID:     creds.AccessKeyID.Reveal(),
		SecretAccessKey: creds.SecretAccessKey.Reveal(),
		SessionToken:    creds.SessionToken.Reveal(),
	}
	err = signer.SignHTTP(ctx, ac, shadow, payload, auth.Service, auth.Region, now, func(o *v4.SignerOptions) {
		// S3 signs the path as sent; every other service escapes it again.
		o.DisableURIPathEscaping = auth.Service == "s3"
	})
	if err != nil {
		return credential.Stepf("SigV4 signing", "failed")
	}
	h := out.Header.Clone()
	h.Set("Authorization", shadow.Header.Get("Authorization"))
	h.Set("X-Amz-Date", shadow.Header.Get("X-Amz-Date"))
	if addHash {
		h.Set("X-Amz-Content-Sha256", payload)
	}
	if tok := shadow.Header.Get("X-Amz-Security-Token"); tok != "" {
		h.Set("X-Amz-Security-Token", tok)
	} else {
		h.Del("X-Amz-Security-Token")
	}
	out.Header = h
	if payload == StreamingSigned {
		seed, err := signatureOf(h.Get("Authorization"))
		if err != nil {
			return credential.Stepf("SigV4 signing", "produced no seed signature")
		}
		out.Body = newChunkSigner(out.Body, ac, auth.Region, auth.Service, now, seed)
	}
	return nil
}

// payloadHash returns the payload hash to sign: the agent's
// x-amz-content-sha256, or the hash of the body when it sent none.
func payloadHash(out *http.Request) (string, error) {
	vs := out.Header.Values("X-Amz-Content-Sha256")
	if len(vs) > 1 {
		return "", malformed("request has more than one x-amz-content-sha256 header")
	}
	if len(vs) == 1 {
		v := vs[0]
		switch {
		case v == UnsignedPayload, v == StreamingUnsignedTrailer, v == StreamingSigned:
			return v, nil
		case len(v) == 64 && strings.Trim(strings.ToLower(v), "0123456789abcdef") == "":
			return strings.ToLower(v), nil
		case strings.HasPrefix(v, "STREAMING-"):
			return "", unsupported("keyhole cannot re-sign %s uploads; use %s, %s or %s",
				v, StreamingSigned, StreamingUnsignedTrailer, UnsignedPayload)
		}
		return "", malformed("request has an x-amz-content-sha256 that is neither a SHA-256 nor a known payload mode")
	}
	if out.Body == nil || out.Body == http.NoBody || out.ContentLength == 0 {
		return emptySHA256, nil
	}
	if out.ContentLength < 0 || out.ContentLength > MaxHashedBody {
		return "", unsupported("keyhole hashes at most %d bytes of a body signed without x-amz-content-sha256", MaxHashedBody)
	}
	b, err := io.ReadAll(io.LimitReader(out.Body, out.ContentLength+1))
	out.Body.Close()
	if err != nil || int64(len(b)) != out.ContentLength {
		return "", malformed("request body ended before its Content-Length")
	}
	out.Body = io.NopCloser(bytes.NewReader(b))
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// signatureOf returns the Signature of a SigV4 Authorization header.
func signatureOf(v string) ([]byte, error) {
	i := strings.LastIndex(v, "Signature=")
	if i < 0 {
		return nil, malformed("has no signature")
	}
	return hex.DecodeString(v[i+len("Signature="):])
}
