package rules

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"keyhole/secret"
)

// VaultConfig is the rules file's vault section: where HashiCorp Vault (or
// OpenBao) is and how keyhole logs in. Exactly one of Token and
// RoleID/SecretID is set.
type VaultConfig struct {
	// Address is Vault's https:// URL; empty means $VAULT_ADDR, read when
	// the vault: sources are.
	Address string
	// Namespace is the Vault Enterprise namespace; empty means none.
	Namespace string
	// CAFile is a PEM file of roots trusted for Vault besides the
	// system's; empty means the system's only.
	CAFile string
	// Token is the source of a Vault token (auth.token).
	Token Source
	// RoleID and SecretID are the sources of an AppRole login
	// (auth.approle).
	RoleID, SecretID Source
	// Line is the line of the section in the rules file.
	Line int

	token, roleID, secretID          secret.Value
	tokenErr, roleIDErr, secretIDErr error
}

// TokenValue returns the Vault token as read, or why it could not be read.
func (c *VaultConfig) TokenValue() (secret.Value, error) { return c.token, c.tokenErr }

// AppRole returns the AppRole role id and secret id as read, or why one of
// them could not be read.
func (c *VaultConfig) AppRole() (roleID, secretID secret.Value, err error) {
	if c.roleIDErr != nil {
		return secret.Value{}, secret.Value{}, c.roleIDErr
	}
	return c.roleID, c.secretID, c.secretIDErr
}

// vault parses the vault section.
func (l *loader) vault(p pair) {
	f, ok := l.fields(p.v, p.field, "address", "namespace", "ca_file", "auth")
	if !ok {
		return
	}
	c := &VaultConfig{Line: p.k.Line, tokenErr: errNotRead, roleIDErr: errNotRead, secretIDErr: errNotRead}
	l.set.Vault = c
	if p, ok := f["address"]; ok {
		if s, ok := l.str(p); ok {
			if err := checkVaultAddress(s); err != nil {
				l.errorf(p.v.Line, p.field, "%v", err)
			}
			c.Address = s
		}
	}
	if p, ok := f["namespace"]; ok {
		if s, ok := l.str(p); ok {
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
				l.errorf(p.v.Line, p.field, "must be a Vault namespace path (no spaces or control characters)")
			}
			c.Namespace = s
		}
	}
	if p, ok := f["ca_file"]; ok {
		if s, ok := l.str(p); ok {
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				l.errorf(p.v.Line, p.field, "must be the path of a PEM file")
			} else if !filepath.IsAbs(s) {
				s = filepath.Join(l.dir, s)
			}
			c.CAFile = filepath.Clean(s)
		}
	}
	a, ok := f["auth"]
	if !ok {
		l.errorf(p.k.Line, p.field+".auth", "is required (token or approle)")
		return
	}
	af, ok := l.fields(a.v, a.field, "token", "approle")
	if !ok {
		return
	}
	tok, hasToken := af["token"]
	role, hasRole := af["approle"]
	switch {
	case hasToken && hasRole:
		l.errorf(role.k.Line, role.field, "give token or approle, not both")
	case hasToken:
		c.Token = l.source(tok, func(v secret.Value, err error) { c.token, c.tokenErr = v, err })
	case hasRole:
		rf, ok := l.fields(role.v, role.field, "role_id", "secret_id")
		if !ok {
			return
		}
		if p, ok := l.required(rf, "role_id", role); ok {
			c.RoleID = l.source(p, func(v secret.Value, err error) { c.roleID, c.roleIDErr = v, err })
		}
		if p, ok := l.required(rf, "secret_id", role); ok {
			c.SecretID = l.source(p, func(v secret.Value, err error) { c.secretID, c.secretIDErr = v, err })
		}
	default:
		l.errorf(a.v.Line, a.field, "must give token or approle")
	}
}

// checkVaultAddress accepts an https:// URL with a host and nothing after
// the path.
func checkVaultAddress(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must be Vault's URL, such as https://vault.internal:8200")
	}
	if u.Scheme != "https" {
		return fmt.Errorf("must be an https:// URL: keyhole sends Vault tokens over verified TLS only")
	}
	return nil
}

// bindVault gives every queued vault: source the vault section, and
// reports those in a file that has none.
func (l *loader) bindVault() {
	for i, r := range l.reads {
		vs, ok := r.src.(VaultSource)
		if !ok {
			continue
		}
		if l.set.Vault == nil {
			l.errorf(r.line, r.field, "vault: sources need a vault section (address and auth)")
			continue
		}
		vs.Vault = l.set.Vault
		l.reads[i].src = vs
	}
	if l.set.Vault == nil {
		return
	}
	for _, sec := range l.set.Secrets {
		if vs, ok := sec.Source.(VaultSource); ok {
			vs.Vault = l.set.Vault
			sec.Source = vs
		}
	}
}
