package rules

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"keyhole/secret"
)

// kindFields are the secret fields of the credential kinds, each with the
// kind it belongs to.
var kindFields = []struct {
	name string
	kind CredentialKind
}{
	{"token_url", KindOAuth2}, {"client_id", KindOAuth2}, {"client_secret", KindOAuth2}, {"scopes", KindOAuth2},
	{"app_id", KindGitHubApp}, {"private_key", KindGitHubApp}, {"installation_id", KindGitHubApp},
	{"repositories", KindGitHubApp}, {"permissions", KindGitHubApp}, {"api_url", KindGitHubApp},
	{"access_key_id", KindAWSSigV4}, {"secret_access_key", KindAWSSigV4}, {"session_token", KindAWSSigV4},
	{"assume_role", KindAWSSigV4},
}

// secretFields returns the fields a secret of the kind written in its
// mapping n may have: those of every secret, and its kind's.
func secretFields(n *yaml.Node) []string {
	out := []string{"source", "hosts", "headers", "methods", "paths", "allow_plaintext", "env", "kind"}
	var kind CredentialKind
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" {
			kind = CredentialKind(n.Content[i+1].Value)
		}
	}
	for _, f := range kindFields {
		if f.kind == kind {
			out = append(out, f.name)
		}
	}
	return out
}

// secretKind decodes the kind of the secret e, whose fields are f, and the
// fields of that kind into s. It reports fields of another kind, and a
// source on a kind that mints its credential.
func (l *loader) secretKind(f map[string]pair, e pair, s *Secret) {
	s.Kind = KindStatic
	if p, ok := f["kind"]; ok {
		if k, ok := l.str(p); ok {
			switch CredentialKind(k) {
			case KindStatic, KindOAuth2, KindGitHubApp, KindAWSSigV4:
				s.Kind = CredentialKind(k)
			default:
				l.errorf(p.v.Line, p.field, "must be static, oauth2, github_app or aws_sigv4, got %s", brief(k))
				s.Kind = ""
			}
		}
	}
	if p, ok := f["source"]; ok && s.Kind.Minted() {
		l.errorf(p.k.Line, p.field, "a secret of kind %s has no source: keyhole mints its credential from the fields of its kind", s.Kind)
	}
	switch s.Kind {
	case KindOAuth2:
		s.OAuth2 = l.oauth2(f, e)
	case KindGitHubApp:
		s.GitHubApp = l.githubApp(f, e)
	case KindAWSSigV4:
		s.AWS = l.aws(f, e)
	}
}

func (l *loader) oauth2(f map[string]pair, e pair) *OAuth2 {
	o := &OAuth2{}
	if p, ok := l.required(f, "token_url", e); ok {
		o.TokenURL = l.httpsURL(p)
	}
	if p, ok := l.required(f, "client_id", e); ok {
		o.ClientID = l.source(p, func(v secret.Value, err error) { o.clientID = v; setErr(&o.err, err) })
	}
	if p, ok := l.required(f, "client_secret", e); ok {
		o.ClientSecret = l.source(p, func(v secret.Value, err error) { o.clientSecret = v; setErr(&o.err, err) })
	}
	if p, ok := f["scopes"]; ok {
		o.Scopes, _ = parseList(l, p, func(s string) (string, string, error) {
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r > 0x7e }) {
				return "", "", errors.New("not a valid OAuth 2.0 scope (printable characters without spaces, quotes or backslashes)")
			}
			return s, s, nil
		})
		l.nonEmpty(p, "omit the field to ask for no scopes")
	}
	return o
}

var digits = regexp.MustCompile(`^[0-9]{1,20}$`)

func (l *loader) githubApp(f map[string]pair, e pair) *GitHubApp {
	g := &GitHubApp{APIURL: DefaultGitHubAPI}
	for _, name := range []string{"app_id", "installation_id"} {
		if p, ok := l.required(f, name, e); ok {
			if s, ok := l.str(p); ok {
				if !digits.MatchString(s) {
					l.errorf(p.v.Line, p.field, "must be a number, such as \"123456\"")
				} else if name == "app_id" {
					g.AppID = s
				} else {
					g.InstallationID = s
				}
			}
		}
	}
	if p, ok := l.required(f, "private_key", e); ok {
		g.PrivateKey = l.rawSource(p, func(v secret.Value, err error) {
			if err == nil {
				g.key, err = parseRSAKey(v)
				if err != nil {
					err = fmt.Errorf("%s: %w", g.PrivateKey, err)
				}
			}
			g.err = err
		}, func(v secret.Value) error {
			_, err := parseRSAKey(v)
			return err
		})
	}
	if p, ok := f["repositories"]; ok {
		g.Repositories, _ = parseList(l, p, func(s string) (string, string, error) {
			if !repoName.MatchString(s) {
				return "", "", errors.New("not a repository name (letters, digits, '.', '_' and '-'; without the owner)")
			}
			return s, strings.ToLower(s), nil
		})
		l.nonEmpty(p, "omit the field to allow every repository of the installation")
	}
	if p, ok := f["permissions"]; ok {
		g.Permissions = l.permissions(p)
	}
	if p, ok := f["api_url"]; ok {
		if u := l.httpsURL(p); u != "" {
			g.APIURL = strings.TrimSuffix(u, "/")
		}
	}
	return g
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
var permissionName = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

func (l *loader) permissions(p pair) map[string]string {
	pairs, ok := l.mapping(p.v, p.field)
	if !ok {
		return nil
	}
	if len(pairs) == 0 {
		l.errorf(p.v.Line, p.field, "must not be empty (omit the field to keep the installation's permissions)")
	}
	out := make(map[string]string, len(pairs))
	for _, e := range pairs {
		if !permissionName.MatchString(e.key) {
			l.errorf(e.k.Line, e.field, "not a GitHub permission name (such as contents or pull_requests)")
			continue
		}
		s, ok := l.str(e)
		if !ok {
			continue
		}
		switch s {
		case "read", "write", "admin":
			out[e.key] = s
		default:
			l.errorf(e.v.Line, e.field, "must be read, write or admin, got %s", brief(s))
		}
	}
	return out
}

func (l *loader) aws(f map[string]pair, e pair) *AWS {
	a := &AWS{}
	if p, ok := l.required(f, "access_key_id", e); ok {
		a.AccessKeyID = l.source(p, func(v secret.Value, err error) { a.accessKeyID = v; setErr(&a.err, err) })
	}
	if p, ok := l.required(f, "secret_access_key", e); ok {
		a.SecretAccessKey = l.source(p, func(v secret.Value, err error) { a.secretAccessKey = v; setErr(&a.err, err) })
	}
	if p, ok := f["session_token"]; ok {
		a.SessionToken = l.source(p, func(v secret.Value, err error) { a.sessionToken = v; setErr(&a.err, err) })
	}
	if p, ok := f["assume_role"]; ok {
		a.AssumeRole = l.assumeRole(p)
	}
	return a
}

// roleARN is an IAM role ARN in any partition.
var roleARN = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`)

func (l *loader) assumeRole(p pair) *AssumeRole {
	f, ok := l.fields(p.v, p.field, "role_arn", "duration", "policy", "sts_endpoint")
	if !ok {
		return nil
	}
	r := &AssumeRole{Duration: 15 * time.Minute, STSEndpoint: DefaultSTSEndpoint}
	if q, ok := l.required(f, "role_arn", p); ok {
		if s, ok := l.str(q); ok {
			if roleARN.MatchString(s) {
				r.RoleARN = s
			} else {
				l.errorf(q.v.Line, q.field, "not an IAM role ARN (want arn:aws:iam::123456789012:role/NAME)")
			}
		}
	}
	if q, ok := f["duration"]; ok {
		if s, ok := l.str(q); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				l.errorf(q.v.Line, q.field, "not a duration such as 15m or 1h")
			case d < 15*time.Minute || d > 12*time.Hour || d%time.Second != 0:
				l.errorf(q.v.Line, q.field, "must be whole seconds from 15m to 12h (what STS allows)")
			default:
				r.Duration = d
			}
		}
	}
	if q, ok := f["policy"]; ok {
		r.Policy = l.rawSource(q, func(v secret.Value, err error) {
			if err == nil {
				err = checkPolicy(v)
				if err != nil {
					err = fmt.Errorf("%s: %w", r.Policy, err)
				}
			}
			r.policy, r.err = v.Reveal(), err
		}, checkPolicy)
	}
	if q, ok := f["sts_endpoint"]; ok {
		if u := l.httpsURL(q); u != "" {
			r.STSEndpoint = strings.TrimSuffix(u, "/")
		}
	}
	return r
}

// maxPolicy is STS's bound on a session policy's size.
const maxPolicy = 2048

func checkPolicy(v secret.Value) error {
	if v.Len() > maxPolicy {
		return fmt.Errorf("the session policy is longer than the %d characters STS accepts", maxPolicy)
	}
	if !json.Valid([]byte(v.Reveal())) {
		return errors.New("the session policy is not valid JSON")
	}
	return nil
}

// httpsURL returns the https:// URL p.v, or "" after reporting a value
// that is not one.
func (l *loader) httpsURL(p pair) string {
	s, ok := l.str(p)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		l.errorf(p.v.Line, p.field, "not a URL (want https://host/path)")
	case u.Scheme != "https":
		l.errorf(p.v.Line, p.field, "must be an https:// URL: keyhole reaches it over verified TLS only")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		l.errorf(p.v.Line, p.field, "must have no user, query or fragment")
	default:
		return s
	}
	return ""
}

// rawSource is source for values that may span lines (a PEM key, a JSON
// policy): env: and file: sources are read whole, without the one-line
// check of header values, and check judges the value instead; its error
// becomes a load warning. Other kinds keep their own reading.
func (l *loader) rawSource(p pair, store func(secret.Value, error), check func(secret.Value) error) Source {
	src := l.source(p, store)
	if src != nil {
		r := &l.reads[len(l.reads)-1]
		switch s := src.(type) {
		case EnvSource:
			r.src = wholeEnv(s)
		case FileSource:
			r.src = wholeFile(s)
		}
		r.check = check
	}
	return src
}

// wholeEnv and wholeFile read an env: or file: source whole, newlines
// included (see rawSource). They print as the source they wrap.
type (
	wholeEnv  EnvSource
	wholeFile FileSource
)

func (e wholeEnv) String() string  { return EnvSource(e).String() }
func (f wholeFile) String() string { return FileSource(f).String() }

func (e wholeEnv) Read(context.Context) (secret.Value, time.Time, error) {
	s, ok := os.LookupEnv(string(e))
	if !ok || s == "" {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: the variable is not set or empty", e)
	}
	return secret.FromString(s), time.Time{}, nil
}

func (f wholeFile) Read(context.Context) (secret.Value, time.Time, error) {
	v, err := readWholeFile(FileSource(f))
	return v, time.Time{}, err
}

// readWholeFile reads a regular file of at most MaxSecretSize bytes.
func readWholeFile(f FileSource) (secret.Value, error) {
	fi, err := os.Stat(string(f))
	if err != nil {
		return secret.Value{}, fmt.Errorf("%s: %w", f, pathless(err))
	}
	if !fi.Mode().IsRegular() {
		return secret.Value{}, fmt.Errorf("%s: not a regular file", f)
	}
	if fi.Size() > MaxSecretSize {
		return secret.Value{}, fmt.Errorf("%s: larger than %d bytes", f, MaxSecretSize)
	}
	b, err := os.ReadFile(string(f))
	if err != nil {
		return secret.Value{}, fmt.Errorf("%s: %w", f, pathless(err))
	}
	return secret.New(b), nil
}

// parseRSAKey parses a PEM RSA private key (PKCS #1, as GitHub hands them
// out, or PKCS #8). Its errors never quote the key.
func parseRSAKey(v secret.Value) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(v.Reveal()))
	if block == nil {
		return nil, errors.New("not a PEM private key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the PEM block is not an RSA private key (PKCS #1 or #8)")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the private key is not an RSA key (GitHub Apps use RS256)")
	}
	return rk, nil
}
