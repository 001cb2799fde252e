// Package oauth2 mints access tokens with the OAuth 2.0 client credentials
// grant (RFC 6749 §4.4), through golang.org/x/oauth2/clientcredentials.
//
// The client authenticates with HTTP Basic (RFC 6749 §2.3.1, which every
// server must support): auto-detection would send the client secret twice,
// once in a header and once in the body, to an endpoint that refused the
// first. Errors name the step and the endpoint's status and RFC 6749 error
// code; they never hold the client secret or the endpoint's body, which
// could echo it.
package oauth2

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"time"

	xoauth2 "golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"keyhole/credential"
	"keyhole/rules"
	"keyhole/secret"
)

// DefaultLifetime is how long a token whose response has no expires_in
// is used. RFC 6749 leaves its lifetime to the server's documentation;
// keyhole assumes little.
const DefaultLifetime = time.Minute

// step names this kind's only step in errors.
const step = "token endpoint"

// Fetch runs the client credentials grant of cfg with client, and returns
// the access token and when it expires (now plus DefaultLifetime when the
// response gives no expires_in). Every error is a *credential.StepError.
func Fetch(ctx context.Context, client *http.Client, cfg *rules.OAuth2, now time.Time) (secret.Value, time.Time, error) {
	id, sec, err := cfg.Client()
	if err != nil {
		return secret.Value{}, time.Time{}, credential.Stepf("client credentials", "cannot be read: %v", err)
	}
	cc := clientcredentials.Config{
		ClientID:     id.Reveal(),
		ClientSecret: sec.Reveal(),
		TokenURL:     cfg.TokenURL,
		Scopes:       cfg.Scopes,
		AuthStyle:    xoauth2.AuthStyleInHeader,
	}
	tok, err := cc.Token(context.WithValue(ctx, xoauth2.HTTPClient, client))
	if err != nil {
		return secret.Value{}, time.Time{}, describe(err)
	}
	if tok.AccessToken == "" || !headerSafe(tok.AccessToken) {
		return secret.Value{}, time.Time{}, credential.Stepf(step, "returned an access token that cannot be sent in a header")
	}
	exp := tok.Expiry
	if exp.IsZero() {
		exp = now.Add(DefaultLifetime)
	}
	return secret.FromString(tok.AccessToken), exp, nil
}

// errorCode is the syntax of RFC 6749's error parameter, so that nothing
// else from the body reaches a message.
var errorCode = regexp.MustCompile(`^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$`)

// describe turns an error of x/oauth2 into a step error without the
// response body.
func describe(err error) error {
	var re *xoauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		if re.Response.StatusCode/100 != 2 {
			msg := "returned " + itoa(re.Response.StatusCode)
			if errorCode.MatchString(re.ErrorCode) {
				msg += " (" + re.ErrorCode + ")"
			}
			return &credential.StepError{Step: step, Msg: msg}
		}
		return credential.Stepf(step, "returned an unparsable token response")
	}
	var ue *url.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ue) && ue.Timeout() {
		return credential.Stepf(step, "did not answer in time")
	}
	if errors.As(err, &ue) {
		return credential.Stepf(step, "could not be reached (%s)", credential.Unreachable(ue.Err))
	}
	// x/oauth2's own errors: a body it could not parse, no access_token.
	return credential.Stepf(step, "returned an unparsable token response")
}

func itoa(n int) string {
	if n < 100 || n > 999 {
		return "an invalid status"
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// headerSafe reports whether a token can travel in a header value.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
