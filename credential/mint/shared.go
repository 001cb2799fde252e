package mint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"keyhole/credential"
	"keyhole/credential/sigv4"
	"keyhole/rules"
	"keyhole/scrub"
	"keyhole/secret"
)

// share makes m's caches share their credentials through s, so that
// replicas do not all mint the same token or session at once.
func (m *Minter) share(s credential.Shared) {
	m.tokens.Shared = credential.SharedCodec[*rules.Secret, credential.Token]{
		Shared: s,
		Key:    tokenKey,
		Encode: func(t credential.Token) ([]byte, error) { return []byte(t.Value.Reveal()), nil },
		Decode: func(sec *rules.Secret, b []byte) (credential.Token, error) {
			return credential.NewToken(sec.Name, secret.New(b)), nil
		},
	}
	m.sessions.Shared = credential.SharedCodec[sessionKey, session]{
		Shared: s,
		Key:    sessionKeyName,
		Encode: func(s session) ([]byte, error) {
			return json.Marshal(sharedSession{s.creds.AccessKeyID.Reveal(), s.creds.SecretAccessKey.Reveal(), s.creds.SessionToken.Reveal(), s.name})
		},
		Decode: func(k sessionKey, b []byte) (session, error) {
			var ss sharedSession
			if err := json.Unmarshal(b, &ss); err != nil {
				return session{}, err
			}
			creds := sigv4.Credentials{AccessKeyID: secret.FromString(ss.AccessKeyID),
				SecretAccessKey: secret.FromString(ss.SecretAccessKey), SessionToken: secret.FromString(ss.SessionToken)}
			return newSession(k.sec, creds, ss.Name), nil
		},
	}
}

// sharedSession is an STS session as shared (sealed by the Shared).
type sharedSession struct {
	AccessKeyID     string `json:"a"`
	SecretAccessKey string `json:"s"`
	SessionToken    string `json:"t"`
	Name            string `json:"n"`
}

// newSession is the cached form of an STS session, with its scrubber.
func newSession(sec *rules.Secret, creds sigv4.Credentials, name string) session {
	sc := scrub.Compile([]scrub.Secret{
		{Name: sec.Name, Value: creds.AccessKeyID},
		{Name: sec.Name, Value: creds.SecretAccessKey},
		{Name: sec.Name, Value: creds.SessionToken},
	})
	return session{creds: creds, name: name, scrub: sc}
}

// tokenKey names an oauth2 or github_app token the same on every replica:
// the secret's name and a digest of its configuration (no value), so that
// a changed configuration mints anew.
func tokenKey(sec *rules.Secret) string {
	var conf string
	switch {
	case sec.OAuth2 != nil:
		o := sec.OAuth2
		conf = fmt.Sprintf("%q %q %q", o.TokenURL, fmt.Sprint(o.ClientID), o.Scopes)
	case sec.GitHubApp != nil:
		g := sec.GitHubApp
		conf = fmt.Sprintf("%q %q %q %q %v", g.AppID, g.InstallationID, g.Repositories, g.APIURL, g.Permissions)
	default:
		return ""
	}
	return "token:" + sec.Name + ":" + digest(string(sec.Kind)+" "+conf)
}

// sessionKeyName names an STS session the same on every replica: per
// secret, role configuration, agent and token id.
func sessionKeyName(k sessionKey) string {
	if k.sec.AWS == nil || k.sec.AWS.AssumeRole == nil {
		return ""
	}
	r := k.sec.AWS.AssumeRole
	conf := fmt.Sprintf("%q %v %q %q", r.RoleARN, r.Duration, r.STSEndpoint, fmt.Sprint(r.Policy))
	return "sts:" + k.sec.Name + ":" + digest(conf) + ":" + k.who.Agent + ":" + k.who.TokenID
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}
