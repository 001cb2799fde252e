package rules

// Kind says how a secret's credential is produced: pasted as it is (static),
// minted from a token endpoint (oauth2, github_app), or used to sign each
// request again (aws_sigv4).
type Kind string

// The credential kinds of CONTRACT.md Part 2 "Credential kinds".
const (
	// KindStatic is Part 1's credential: the source's value swapped in.
	KindStatic Kind = "static"
	// KindOAuth2 is an OAuth 2.0 client credentials grant's access token.
	KindOAuth2 Kind = "oauth2"
	// KindGitHubApp is a GitHub App installation access token.
	KindGitHubApp Kind = "github_app"
	// KindAWSSigV4 re-signs AWS Signature Version 4 requests.
	KindAWSSigV4 Kind = "aws_sigv4"
)

// Minted reports whether the kind's credential is produced per request (or
// per token lifetime) rather than read from a source: every kind but static.
func (k Kind) Minted() bool { return k != KindStatic && k != "" }
