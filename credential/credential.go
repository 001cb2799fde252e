// Package credential holds what every minted or signed credential kind
// shares: who a credential is for ([Who]), a minted token together with the
// scrubber for it ([Token]), the cache that fetches each credential once for
// many concurrent requests and keeps it until shortly before it expires
// ([Cache]), and the errors a kind reports ([StepError], [ErrUnsupported],
// [ErrMalformed]).
//
// The kinds themselves live in sub-packages (oauth2, githubapp, sigv4) and
// package mint puts them together for the proxy. Package inject, which
// decides whether a request may go, never calls any of them: the proxy asks
// for a credential only once the policy allowed the request.
package credential

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"keyhole/scrub"
	"keyhole/secret"
)

// Who is the caller a credential is minted for. Tokens of the oauth2 and
// github_app kinds are shared by every caller; an STS session is minted per
// agent and token id.
type Who struct {
	// Agent is the agent's name.
	Agent string
	// TokenID is the id of the minted token the agent authenticated with;
	// empty for a static token.
	TokenID string
}

// Token is a minted credential and the scrubber that replaces it (in every
// form scrub.Compile knows) by its placeholder in responses. Scrub is
// compiled once per token, not per request.
type Token struct {
	Value secret.Value
	Scrub *scrub.Replacer
}

// NewToken returns the Token for the value v of the secret name.
func NewToken(name string, v secret.Value) Token {
	return Token{Value: v, Scrub: scrub.Compile([]scrub.Secret{{Name: name, Value: v}})}
}

// ErrUnsupported marks a request signed in a way keyhole cannot re-sign
// (a presigned URL, SigV4a): 403 unsupported_signature.
var ErrUnsupported = errors.New("unsupported signature")

// ErrMalformed marks a request whose credential keyhole cannot parse (a
// broken SigV4 Authorization header): 400 bad_request.
var ErrMalformed = errors.New("malformed credential")

// StepError is a failure to mint a credential. Its message names the step
// that failed ("token endpoint returned 401") and never holds a value.
type StepError struct {
	// Step says what was being done: "token endpoint", "STS AssumeRole".
	Step string
	// Msg says what went wrong, without a credential.
	Msg string
}

func (e *StepError) Error() string { return e.Step + " " + e.Msg }

// Stepf returns a StepError for step with a formatted message.
func Stepf(step, format string, args ...any) *StepError {
	return &StepError{Step: step, Msg: fmt.Sprintf(format, args...)}
}

// Unreachable says, in a few words without addresses or values, why a
// credential endpoint could not be reached: the fault classes an operator
// tells apart.
func Unreachable(err error) string {
	var (
		verr *tls.CertificateVerificationError
		hErr x509.HostnameError
		uErr x509.UnknownAuthorityError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &verr), errors.As(err, &hErr), errors.As(err, &uErr), strings.Contains(msg, "tls: "):
		return "TLS verification failed"
	case strings.Contains(msg, "non-public address"):
		return "it resolves to a private address and block_private is on"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case strings.Contains(msg, "no such host"):
		return "no such host"
	}
	return "connection failed"
}
