package vault

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"keyhole/rules"
)

// requestTimeout bounds each request to Vault.
const requestTimeout = 10 * time.Second

// session is a client logged in to one Vault with one identity.
type session struct {
	id      string
	addr    string
	client  *api.Client
	cfg     *rules.VaultConfig
	approle bool

	loggedIn  bool
	tokenAt   time.Time     // when ttl was learned
	ttl       time.Duration // the token's remaining life at tokenAt; 0: none
	renewable bool
}

// sessionID identifies a section and the credentials it read, so that a
// rotated token starts a new session. It is a hash: it holds no token.
func sessionID(c *rules.VaultConfig) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%t\x00", address(c), c.Namespace, c.CAFile, c.Token != nil)
	if c.Token != nil {
		tok, err := c.TokenValue()
		if err != nil {
			return "", fmt.Errorf("the Vault token could not be read: %w", err)
		}
		h.Write([]byte(tok.Reveal()))
	} else {
		role, sid, err := c.AppRole()
		if err != nil {
			return "", fmt.Errorf("the AppRole credentials could not be read: %w", err)
		}
		h.Write([]byte(role.Reveal() + "\x00" + sid.Reveal()))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// address is the section's address, else $VAULT_ADDR.
func address(c *rules.VaultConfig) string {
	if c.Address != "" {
		return c.Address
	}
	return os.Getenv("VAULT_ADDR")
}

// newSession makes a client for c; it logs in at its first ensure.
func newSession(c *rules.VaultConfig, id string) (*session, error) {
	addr := address(c)
	u, err := url.Parse(addr)
	switch {
	case addr == "":
		return nil, errors.New("no Vault address: set vault.address in the rules or VAULT_ADDR")
	case err != nil || u.Host == "":
		return nil, errors.New("VAULT_ADDR is not a URL")
	case u.Scheme != "https":
		return nil, errors.New("the Vault address must be https://: keyhole sends Vault tokens over verified TLS only")
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("vault.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("vault.ca_file: %s holds no PEM certificate", c.CAFile)
		}
	}
	transport := &http.Transport{
		// No Proxy: keyhole's own HTTPS_PROXY, if any, is not for Vault.
		DialContext:         (&net.Dialer{Timeout: requestTimeout}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: requestTimeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	client, err := api.NewClient(&api.Config{
		Address:    addr,
		HttpClient: &http.Client{Transport: transport, Timeout: requestTimeout},
		Timeout:    requestTimeout,
		MaxRetries: 0, // the Loader retries, with backoff
	})
	if err != nil {
		return nil, errors.New("the Vault client could not be made")
	}
	client.ClearToken() // NewClient takes VAULT_TOKEN; only the rules say which token
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	} else {
		client.ClearNamespace()
	}
	return &session{id: id, addr: addr, client: client, cfg: c, approle: c.Token == nil}, nil
}

// ensure logs in, or renews the token once two thirds of its life are
// gone: renew-self while it is renewable, else a new AppRole login. A
// static token that cannot be renewed is used until it expires.
func (s *session) ensure(ctx context.Context, now time.Time) error {
	if !s.loggedIn {
		return s.login(ctx, now)
	}
	if s.ttl == 0 || now.Sub(s.tokenAt) < s.ttl*2/3 {
		return nil
	}
	if s.renewable {
		sec, err := s.client.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err == nil && sec != nil && sec.Auth != nil && sec.Auth.LeaseDuration > 0 {
			s.tokenAt, s.renewable = now, sec.Auth.Renewable
			s.ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
			return nil
		}
	}
	if s.approle {
		return s.login(ctx, now)
	}
	if now.Sub(s.tokenAt) >= s.ttl {
		return errors.New("the Vault token has expired and cannot be renewed")
	}
	return nil
}

// login authenticates: AppRole, or the static token checked with
// lookup-self (which also says its TTL and whether it renews).
func (s *session) login(ctx context.Context, now time.Time) error {
	if s.approle {
		role, sid, err := s.cfg.AppRole()
		if err != nil {
			return fmt.Errorf("the AppRole credentials could not be read: %w", err)
		}
		auth, err := approle.NewAppRoleAuth(role.Reveal(), &approle.SecretID{FromString: sid.Reveal()})
		if err != nil {
			return errors.New("AppRole login: the role_id or secret_id is empty")
		}
		sec, err := s.client.Auth().Login(ctx, auth)
		if err != nil {
			return fmt.Errorf("AppRole login: %w", describe(err, s.addr))
		}
		if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			return errors.New("AppRole login: Vault returned no token")
		}
		s.loggedIn, s.tokenAt, s.renewable = true, now, sec.Auth.Renewable
		s.ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
		return nil
	}
	tok, err := s.cfg.TokenValue()
	if err != nil {
		return fmt.Errorf("the Vault token could not be read: %w", err)
	}
	s.client.SetToken(tok.Reveal())
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return fmt.Errorf("token lookup: %w", describe(err, s.addr))
	}
	if sec == nil || sec.Data == nil {
		return errors.New("token lookup: Vault returned nothing")
	}
	s.loggedIn, s.tokenAt = true, now
	s.renewable, _ = sec.Data["renewable"].(bool)
	s.ttl = 0
	if n, ok := sec.Data["ttl"].(json.Number); ok {
		if secs, err := n.Int64(); err == nil && secs > 0 {
			s.ttl = time.Duration(secs) * time.Second
		}
	}
	return nil
}

// expires returns when the token ends if nothing renews it; zero: never.
func (s *session) expires() time.Time {
	if s.ttl == 0 {
		return time.Time{}
	}
	return s.tokenAt.Add(s.ttl)
}
