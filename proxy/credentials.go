package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"keyhole/credential"
	"keyhole/credential/mint"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/secret"
)

// Credentials mints and signs the credentials of every kind but static.
// The proxy asks it only for requests the policy allowed, and only for the
// secrets those requests use.
type Credentials interface {
	// Token returns the current token of the oauth2 or github_app secret
	// sec. An error names the step that failed, never a value.
	Token(ctx context.Context, sec *rules.Secret, who credential.Who) (credential.Token, error)
	// Sign re-signs out, whose SigV4 Authorization header names the
	// aws_sigv4 secret sec as its access key, with the real or session
	// credentials. It returns a scrubber for what it sent and a note for
	// the audit record (the STS session name), or an error wrapping
	// credential.ErrUnsupported or credential.ErrMalformed for a request
	// it cannot re-sign.
	Sign(ctx context.Context, sec *rules.Secret, who credential.Who, out *http.Request) (mint.Signed, error)
	// Presigned reports whether u is a presigned URL whose credential is
	// the placeholder of one of set's aws_sigv4 secrets (which keyhole
	// cannot re-sign), and the secret's name.
	Presigned(set *rules.Set, rawQuery string) (string, bool)
}

// credentials is the step after the policy: it swaps minted tokens into
// the outgoing request and re-signs it for the aws_sigv4 secrets Apply
// checked, adding what it sent to the exchange's scrub set.
func (x *exchange) credentials(out *http.Request, t inject.Target, res *inject.Result) *inject.Refusal {
	creds := x.p.creds
	if creds != nil && strings.Contains(out.URL.RawQuery, "X-Amz-") {
		if name, ok := creds.Presigned(x.pol.set, out.URL.RawQuery); ok {
			x.rec.Secrets = append(x.rec.Secrets, name)
			return inject.Refuse(inject.UnsupportedSignature, name, t.Host,
				"secret %s cannot be used in a presigned URL (keyhole cannot re-sign it); sign the request in its Authorization header instead", name)
		}
	}
	if res.Minted == nil {
		return nil
	}
	if creds == nil {
		return inject.Refuse(inject.SecretUnavailable, res.Minted[0], t.Host,
			"secret %s is unavailable: this proxy mints no credentials", res.Minted[0])
	}
	who := credential.Who{Agent: x.caller.Agent, TokenID: x.caller.tokenID}
	if ref := inject.Finish(out.Context(), x.pol.set, x.caller.Caller, t, res, tokenStep{x, who}); ref != nil {
		return ref
	}
	out.Header = res.Header
	for _, name := range res.Minted {
		sec := x.pol.set.Secrets[name]
		if sec.Kind != rules.KindAWSSigV4 {
			continue
		}
		signed, err := creds.Sign(out.Context(), sec, who, out)
		if err != nil {
			return signRefusal(err, name, t.Host)
		}
		x.scrubs = append(x.scrubs, signed.Scrub)
		if signed.Session != "" {
			x.rec.Session = signed.Session
		}
	}
	return nil
}

// signRefusal maps a signing failure to its refusal.
func signRefusal(err error, name, host string) *inject.Refusal {
	switch {
	case errors.Is(err, credential.ErrUnsupported):
		return inject.Refuse(inject.UnsupportedSignature, name, host, "%v", err)
	case errors.Is(err, credential.ErrMalformed):
		return inject.Refuse(inject.BadRequest, name, host, "%v", err)
	}
	return inject.Refuse(inject.SecretUnavailable, name, host,
		"secret %s is unavailable right now: %v", name, err)
}

// tokenStep lets inject.Finish ask the proxy's Credentials for tokens,
// keeping each token's scrubber for the response.
type tokenStep struct {
	x   *exchange
	who credential.Who
}

func (s tokenStep) Token(ctx context.Context, sec *rules.Secret, _ inject.Caller) (secret.Value, error) {
	tok, err := s.x.p.creds.Token(ctx, sec, s.who)
	if err != nil {
		return secret.Value{}, err
	}
	s.x.scrubs = append(s.x.scrubs, tok.Scrub)
	return tok.Value, nil
}

var _ inject.Tokens = tokenStep{}
