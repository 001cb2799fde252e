// Package mint produces, for the proxy, the credential of every kind but
// static: it fetches oauth2 and github_app tokens and STS sessions through
// one HTTP client (the proxy's own transport, so verified TLS, pins and
// block_private apply to token endpoints too), caches each until shortly
// before it expires, fetches it once for many concurrent requests, and
// re-signs aws_sigv4 requests.
package mint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"keyhole/credential"
	"keyhole/credential/githubapp"
	"keyhole/credential/oauth2"
	"keyhole/rules"
)

// Config configures a Minter. The zero value of every field but Client
// works.
type Config struct {
	// Client reaches token endpoints; required. Redirects are never
	// followed: a token endpoint that redirects fails.
	Client *http.Client
	// Log receives a warning for every failure to mint; nil discards.
	Log *slog.Logger
	// Timeout bounds one fetch from a token endpoint; default 10s.
	Timeout time.Duration
	// CacheSize bounds each cache; default credential.DefaultCacheSize.
	CacheSize int
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Shared, when not nil, shares minted tokens and STS sessions with
	// other replicas, so that one replica mints each (see
	// credential.Shared).
	Shared credential.Shared
}

// Minter mints and signs credentials. It is safe for concurrent use.
type Minter struct {
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	tokens   *credential.Cache[*rules.Secret, credential.Token]
	sessions *credential.Cache[sessionKey, session]
}

// New returns a Minter for cfg.
func New(cfg Config) (*Minter, error) {
	if cfg.Client == nil {
		return nil, errors.New("mint: a client is required")
	}
	client := *cfg.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error {
		return errors.New("the endpoint redirected; keyhole does not follow redirects of token endpoints")
	}
	m := &Minter{client: &client, log: cfg.Log, now: cfg.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.tokens = credential.NewCache[*rules.Secret, credential.Token](cfg.CacheSize)
	m.tokens.Timeout, m.tokens.Now = cfg.Timeout, m.now
	m.sessions = credential.NewCache[sessionKey, session](cfg.CacheSize)
	m.sessions.Timeout, m.sessions.Now = cfg.Timeout, m.now
	if cfg.Shared != nil {
		m.share(cfg.Shared)
	}
	return m, nil
}

// refreshMargin is how long before its expiry a token of a lifetime is
// fetched again: a tenth of the lifetime, at most a minute, so that a
// token is never sent moments before it expires.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(time.Minute, lifetime/10)
}

// Token returns the current token of the oauth2 or github_app secret sec.
func (m *Minter) Token(ctx context.Context, sec *rules.Secret, who credential.Who) (credential.Token, error) {
	var fetch credential.Fetch[credential.Token]
	switch {
	case sec.Kind == rules.KindOAuth2 && sec.OAuth2 != nil:
		fetch = func(ctx context.Context) (credential.Token, time.Time, error) {
			now := m.now()
			v, exp, err := oauth2.Fetch(ctx, m.client, sec.OAuth2, now)
			if err != nil {
				return credential.Token{}, time.Time{}, err
			}
			return credential.NewToken(sec.Name, v), exp.Add(-refreshMargin(exp.Sub(now))), nil
		}
	case sec.Kind == rules.KindGitHubApp && sec.GitHubApp != nil:
		fetch = func(ctx context.Context) (credential.Token, time.Time, error) {
			v, refresh, err := githubapp.Fetch(ctx, m.client, sec.GitHubApp, m.now())
			if err != nil {
				return credential.Token{}, time.Time{}, err
			}
			return credential.NewToken(sec.Name, v), refresh, nil
		}
	default:
		return credential.Token{}, fmt.Errorf("secret %s of kind %s mints no token", sec.Name, sec.Kind)
	}
	// Keyed by the compiled rules entry: a reload that changes the secret
	// mints anew.
	tok, err := m.tokens.Get(ctx, sec, fetch)
	if err != nil {
		m.failed(sec, err)
	}
	return tok, err
}

// failed logs a failure to mint. The error names a step, never a value.
func (m *Minter) failed(sec *rules.Secret, err error) {
	m.log.Warn("credential not minted", "secret", sec.Name, "kind", string(sec.Kind), "error", err.Error())
}
