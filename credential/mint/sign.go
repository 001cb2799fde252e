package mint

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"keyhole/credential"
	"keyhole/credential/sigv4"
	"keyhole/credential/sts"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/scrub"
)

// Signed is what Sign did to a request.
type Signed struct {
	// Scrub replaces what was sent in the response (a session's
	// credentials); nil for nothing.
	Scrub *scrub.Replacer
	// Session is the STS session name signed with; empty for none.
	Session string
}

// sessionKey keys an STS session: one per secret (as compiled: a reload
// assumes anew), agent and token.
type sessionKey struct {
	sec *rules.Secret
	who credential.Who
}

// session is an STS session as cached.
type session struct {
	creds sigv4.Credentials
	name  string
	scrub *scrub.Replacer
}

// Sign re-signs out, whose SigV4 Authorization names the aws_sigv4 secret
// sec's placeholder as its access key, with the secret's credentials or,
// with assume_role, the STS session of who.
func (m *Minter) Sign(ctx context.Context, sec *rules.Secret, who credential.Who, out *http.Request) (Signed, error) {
	if sec.AWS == nil {
		return Signed{}, fmt.Errorf("secret %s is not of kind aws_sigv4", sec.Name)
	}
	vs := out.Header.Values("Authorization")
	if len(vs) != 1 {
		return Signed{}, fmt.Errorf("%w: secret %s works only as the access key id of one SigV4 Authorization header", credential.ErrUnsupported, sec.Name)
	}
	auth, err := sigv4.ParseAuthorization(vs[0])
	if err != nil {
		return Signed{}, err
	}
	if auth.AccessKeyID != sec.Placeholder() {
		return Signed{}, fmt.Errorf("%w: secret %s works only as the access key id of a SigV4 Authorization header (Credential=%s/...)",
			credential.ErrUnsupported, sec.Name, sec.Placeholder())
	}
	id, key, tok, err := sec.AWS.Credentials()
	if err != nil {
		return Signed{}, credential.Stepf("AWS credentials", "cannot be read; the operator's log says why")
	}
	creds := sigv4.Credentials{AccessKeyID: id, SecretAccessKey: key, SessionToken: tok}
	var signed Signed
	if r := sec.AWS.AssumeRole; r != nil {
		s, err := m.session(ctx, sec, r, creds, who)
		if err != nil {
			return Signed{}, err
		}
		creds, signed = s.creds, Signed{Scrub: s.scrub, Session: s.name}
	}
	if err := sigv4.Sign(ctx, out, auth, creds, m.now()); err != nil {
		return Signed{}, err
	}
	return signed, nil
}

// session returns the STS session of who for sec, assuming the role when
// there is none or it expires within RefreshBefore.
func (m *Minter) session(ctx context.Context, sec *rules.Secret, r *rules.AssumeRole, base sigv4.Credentials, who credential.Who) (session, error) {
	name := sts.SessionName(who.Agent, who.TokenID)
	s, err := m.sessions.Get(ctx, sessionKey{sec, who}, func(ctx context.Context) (session, time.Time, error) {
		now := m.now()
		creds, exp, err := sts.AssumeRole(ctx, m.client, r, base, name, now)
		if err != nil {
			return session{}, time.Time{}, err
		}
		refresh := exp.Add(-RefreshBefore)
		if !refresh.After(now) {
			refresh = now.Add(exp.Sub(now) / 2)
		}
		return newSession(sec, creds, name), refresh, nil
	})
	if err != nil {
		m.failed(sec, err)
	}
	return s, err
}

// RefreshBefore is how long before an STS session expires a new one is
// assumed.
const RefreshBefore = 5 * time.Minute

// Presigned reports whether rawQuery is that of a presigned URL whose
// X-Amz-Credential holds the placeholder of one of set's aws_sigv4
// secrets, and that secret's name.
func (m *Minter) Presigned(set *rules.Set, rawQuery string) (string, bool) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil && q == nil {
		return "", false
	}
	for _, v := range q["X-Amz-Credential"] {
		for _, p := range inject.FindPlaceholders(v) {
			if sec := set.Secrets[p.Name]; sec != nil && sec.Kind == rules.KindAWSSigV4 {
				return p.Name, true
			}
		}
	}
	return "", false
}
