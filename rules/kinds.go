package rules

import (
	"crypto/rsa"
	"time"

	"keyhole/secret"
)

// CredentialKind says how a secret's credential is produced: pasted as it is (static),
// minted from a token endpoint (oauth2, github_app), or used to sign each
// request again (aws_sigv4).
type CredentialKind string

// The credential kinds of CONTRACT.md Part 2 "Credential kinds".
const (
	// KindStatic is Part 1's credential: the source's value swapped in.
	KindStatic CredentialKind = "static"
	// KindOAuth2 is an OAuth 2.0 client credentials grant's access token.
	KindOAuth2 CredentialKind = "oauth2"
	// KindGitHubApp is a GitHub App installation access token.
	KindGitHubApp CredentialKind = "github_app"
	// KindAWSSigV4 re-signs AWS Signature Version 4 requests.
	KindAWSSigV4 CredentialKind = "aws_sigv4"
)

// Minted reports whether the kind's credential is produced per request (or
// per token lifetime) rather than read from a source: every kind but static.
func (k CredentialKind) Minted() bool { return k != KindStatic && k != "" }

// OAuth2 configures a secret of kind oauth2: an OAuth 2.0 client
// credentials grant (RFC 6749 §4.4) at TokenURL.
type OAuth2 struct {
	// TokenURL is the token endpoint, an https:// URL.
	TokenURL string
	// ClientID and ClientSecret are the client's credentials' sources.
	ClientID, ClientSecret Source
	// Scopes are the scopes asked for; nil asks for none.
	Scopes []string

	clientID, clientSecret secret.Value
	err                    error
}

// Client returns the client id and secret as read at load, or the error
// that prevented reading them.
func (o *OAuth2) Client() (id, sec secret.Value, err error) {
	return o.clientID, o.clientSecret, o.err
}

// DefaultGitHubAPI is the api_url of a github_app secret that names none.
const DefaultGitHubAPI = "https://api.github.com"

// GitHubApp configures a secret of kind github_app: installation access
// tokens of a GitHub App.
type GitHubApp struct {
	// AppID is the app's id (digits).
	AppID string
	// PrivateKey is the source of the app's PEM private key.
	PrivateKey Source
	// InstallationID is the installation whose tokens are minted (digits).
	InstallationID string
	// Repositories narrows the tokens to these repositories (names,
	// without owner); nil means every repository of the installation.
	Repositories []string
	// Permissions narrows the tokens to these permissions (name → read,
	// write or admin); nil means the installation's.
	Permissions map[string]string
	// APIURL is GitHub's REST API base; default DefaultGitHubAPI.
	APIURL string

	key *rsa.PrivateKey
	err error
}

// Key returns the app's private key as read and parsed at load, or the
// error that prevented it.
func (g *GitHubApp) Key() (*rsa.PrivateKey, error) { return g.key, g.err }

// DefaultSTSEndpoint is the sts_endpoint of an assume_role that names none.
const DefaultSTSEndpoint = "https://sts.amazonaws.com"

// AWS configures a secret of kind aws_sigv4: the credentials requests are
// signed again with.
type AWS struct {
	// AccessKeyID, SecretAccessKey and SessionToken (nil for none) are
	// the sources of the long-lived (or operator-provided session)
	// credentials.
	AccessKeyID, SecretAccessKey, SessionToken Source
	// AssumeRole, when set, signs with an STS session per agent and token
	// instead, assumed with the credentials above.
	AssumeRole *AssumeRole

	accessKeyID, secretAccessKey, sessionToken secret.Value
	err                                        error
}

// Credentials returns the access key id, secret key and session token
// (zero when none) as read at load, or the error that prevented reading
// them.
func (a *AWS) Credentials() (id, key, session secret.Value, err error) {
	return a.accessKeyID, a.secretAccessKey, a.sessionToken, a.err
}

// AssumeRole configures the STS AssumeRole call of an aws_sigv4 secret.
type AssumeRole struct {
	// RoleARN is the role assumed.
	RoleARN string
	// Duration is the session's lifetime; default 15m (STS allows 15m to
	// 12h).
	Duration time.Duration
	// Policy is the source of a session policy that narrows the role; nil
	// for none.
	Policy Source
	// STSEndpoint is the STS endpoint; default DefaultSTSEndpoint.
	STSEndpoint string

	policy string
	err    error
}

// SessionPolicy returns the session policy JSON as read at load ("" for
// none), or the error that prevented reading it.
func (r *AssumeRole) SessionPolicy() (string, error) { return r.policy, r.err }

// setErr keeps the first error of a kind's sources.
func setErr(dst *error, err error) {
	if *dst == nil {
		*dst = err
	}
}

// KindSources returns the sources of the secret's kind fields (client
// credentials, private key, AWS keys, session policy); nil for static.
func (s *Secret) KindSources() []Source {
	var out []Source
	add := func(srcs ...Source) {
		for _, src := range srcs {
			if src != nil {
				out = append(out, src)
			}
		}
	}
	switch {
	case s.OAuth2 != nil:
		add(s.OAuth2.ClientID, s.OAuth2.ClientSecret)
	case s.GitHubApp != nil:
		add(s.GitHubApp.PrivateKey)
	case s.AWS != nil:
		add(s.AWS.AccessKeyID, s.AWS.SecretAccessKey, s.AWS.SessionToken)
		if r := s.AWS.AssumeRole; r != nil {
			add(r.Policy)
		}
	}
	return out
}

// KindValues returns the readable credential values of the secret's kind
// fields (client secret, private key, AWS keys), for scrubbing responses;
// nil for static.
func (s *Secret) KindValues() []secret.Value {
	var out []secret.Value
	switch {
	case s.OAuth2 != nil:
		out = append(out, s.OAuth2.clientSecret)
	case s.AWS != nil:
		out = append(out, s.AWS.accessKeyID, s.AWS.secretAccessKey, s.AWS.sessionToken)
	}
	return out
}
