package mint

import (
	"context"
	"errors"
	"net/http"

	"keyhole/credential"
	"keyhole/rules"
	"keyhole/scrub"
)

// Signed is what Sign did to a request.
type Signed struct {
	// Scrub replaces what was sent in the response; nil for nothing.
	Scrub *scrub.Replacer
	// Session is the STS session name signed with; empty for none.
	Session string
}

// Sign re-signs out for the aws_sigv4 secret sec.
func (m *Minter) Sign(ctx context.Context, sec *rules.Secret, who credential.Who, out *http.Request) (Signed, error) {
	return Signed{}, errors.New("aws_sigv4 signing is not available in this build")
}

// Presigned reports whether rawQuery is that of a presigned URL whose
// credential is the placeholder of one of set's aws_sigv4 secrets.
func (m *Minter) Presigned(set *rules.Set, rawQuery string) (string, bool) { return "", false }
