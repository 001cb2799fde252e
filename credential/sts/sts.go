// Package sts assumes IAM roles with AWS STS's AssumeRole (Query API,
// version 2011-06-15), for aws_sigv4 secrets with assume_role: one session
// per agent and token, named so that CloudTrail names them too, narrowed by
// the operator's session policy.
//
// See https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
package sts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"keyhole/credential"
	"keyhole/credential/sigv4"
	"keyhole/rules"
	"keyhole/secret"
)

// step names this package's call in errors.
const step = "STS AssumeRole"

// maxResponse bounds the response read.
const maxResponse = 1 << 20

// maxSessionName is STS's bound on RoleSessionName.
const maxSessionName = 64

// SessionName returns "keyhole-AGENT-TOKENID" ("keyhole-AGENT" for a
// static token) in STS's character set ([\w+=,.@-]; anything else becomes
// '-') and at most 64 characters.
func SessionName(agent, tokenID string) string {
	name := "keyhole-" + agent
	if tokenID != "" {
		name += "-" + tokenID
	}
	b := []byte(name)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_+=,.@-", c) >= 0) {
			b[i] = '-'
		}
	}
	if len(b) > maxSessionName {
		b = b[:maxSessionName]
	}
	return string(b)
}

// assumeRoleResponse is the part of STS's answer keyhole reads.
type assumeRoleResponse struct {
	Credentials struct {
		AccessKeyID     string    `xml:"AccessKeyId"`
		SecretAccessKey string    `xml:"SecretAccessKey"`
		SessionToken    string    `xml:"SessionToken"`
		Expiration      time.Time `xml:"Expiration"`
	} `xml:"AssumeRoleResult>Credentials"`
}

// errorResponse is STS's error document.
type errorResponse struct {
	Code string `xml:"Error>Code"`
}

var errorCode = regexp.MustCompile(`^[A-Za-z.]{1,64}$`)

// AssumeRole assumes cfg's role with base (the secret's own credentials)
// as session name, and returns the session's credentials and when they
// expire. Every error is a *credential.StepError.
func AssumeRole(ctx context.Context, client *http.Client, cfg *rules.AssumeRole, base sigv4.Credentials, name string, now time.Time) (sigv4.Credentials, time.Time, error) {
	var none sigv4.Credentials
	policy, err := cfg.SessionPolicy()
	if err != nil {
		return none, time.Time{}, credential.Stepf(step, "cannot run: the session policy cannot be read; the operator's log says why")
	}
	form := url.Values{
		"Action":          {"AssumeRole"},
		"Version":         {"2011-06-15"},
		"RoleArn":         {cfg.RoleARN},
		"RoleSessionName": {name},
		"DurationSeconds": {strconv.Itoa(int(cfg.Duration / time.Second))},
	}
	if policy != "" {
		form.Set("Policy", policy)
	}
	body := form.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.STSEndpoint+"/", strings.NewReader(body))
	if err != nil {
		return none, time.Time{}, credential.Stepf(step, "could not be built")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	ac := aws.Credentials{AccessKeyID: base.AccessKeyID.Reveal(), SecretAccessKey: base.SecretAccessKey.Reveal(), SessionToken: base.SessionToken.Reveal()}
	if err := v4.NewSigner().SignHTTP(ctx, ac, req, hex.EncodeToString(sum[:]), "sts", region(req.URL.Hostname()), now); err != nil {
		return none, time.Time{}, credential.Stepf(step, "could not be signed")
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ue) && ue.Timeout() {
			return none, time.Time{}, credential.Stepf(step, "got no answer in time")
		}
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return none, time.Time{}, credential.Stepf(step, "could not reach STS (%s)", credential.Unreachable(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return none, time.Time{}, credential.Stepf(step, "response could not be read")
	}
	if resp.StatusCode != http.StatusOK {
		msg := "returned " + strconv.Itoa(resp.StatusCode)
		var e errorResponse
		if xml.Unmarshal(data, &e) == nil && errorCode.MatchString(e.Code) {
			msg += " (" + e.Code + ")"
		}
		return none, time.Time{}, &credential.StepError{Step: step, Msg: msg}
	}
	var r assumeRoleResponse
	if err := xml.Unmarshal(data, &r); err != nil {
		return none, time.Time{}, credential.Stepf(step, "returned an unparsable response")
	}
	c := r.Credentials
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" || c.Expiration.IsZero() ||
		!headerSafe(c.AccessKeyID) || !headerSafe(c.SessionToken) {
		return none, time.Time{}, credential.Stepf(step, "returned incomplete credentials")
	}
	return sigv4.Credentials{
		AccessKeyID:     secret.FromString(c.AccessKeyID),
		SecretAccessKey: secret.FromString(c.SecretAccessKey),
		SessionToken:    secret.FromString(c.SessionToken),
	}, c.Expiration, nil
}

// region is the signing region of an STS endpoint: REGION of
// sts.REGION.amazonaws.com, else us-east-1 (the global endpoint's).
func region(host string) string {
	if rest, ok := strings.CutPrefix(host, "sts."); ok {
		if r, ok := strings.CutSuffix(rest, ".amazonaws.com"); ok && r != "" && !strings.Contains(r, ".") {
			return r
		}
	}
	return "us-east-1"
}

func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
