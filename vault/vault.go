// Package vault reads vault: secret sources from HashiCorp Vault or
// OpenBao, with the official client library (github.com/hashicorp/vault/api).
//
// A [Kind] logs in once with the rules file's vault section (a token, or
// AppRole), keeps the token alive with renew-self while it is renewable
// (logging in again with AppRole when it is not), and reads each PATH
// once for every secret that names it: secret/data/stripe#api_key and
// secret/data/stripe#webhook_key share one GET and one lease. A value with
// a lease is renewed (sys/leases/renew) before the lease ends, and read
// again when it cannot be renewed; a value without a lease is read again
// at every reload.
//
// The value of a source expires when its lease does, or when the token
// does if that is sooner (Vault revokes a token's leases with it), so the
// rules.Loader calls Read again in time. Errors name the path and say what
// Vault answered (permission denied, not found, sealed); they never hold
// a value, a token or Vault's own error text.
//
// TLS to Vault is always verified, against the system roots and the
// section's ca_file; the client ignores VAULT_SKIP_VERIFY, VAULT_TOKEN and
// the other VAULT_* variables except VAULT_ADDR, which is the default
// address.
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"keyhole/rules"
	"keyhole/secret"
)

// Kind reads vault: sources for a rules.Loader. The zero Kind is ready;
// it is safe for concurrent use and keeps its session and leases across
// reloads.
type Kind struct {
	// Now returns the current time; nil means time.Now (tests set it).
	Now func() time.Time

	mu    sync.Mutex
	sess  *session
	paths map[string]*path // by Vault path, within sess
}

// path is what keyhole holds of one Vault path: its data, shared by every
// secret that names the path, and its lease.
type path struct {
	mu        sync.Mutex
	data      map[string]any
	readAt    time.Time // when data was read or its lease renewed
	leaseID   string
	renewable bool
	ttl       time.Duration // the lease's duration at readAt; 0: none
}

// shareWindow is how long after a read another secret naming the same path
// takes the data as read: the secrets of one resolve are read at once.
const shareWindow = 5 * time.Second

func (k *Kind) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Read returns the field src names.
func (k *Kind) Read(ctx context.Context, src rules.Source) (secret.Value, time.Time, error) {
	vs, ok := src.(rules.VaultSource)
	if !ok || vs.Vault == nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: not a vault: source with a vault section", src)
	}
	sess, p, err := k.session(ctx, vs)
	if err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := k.refresh(ctx, sess, vs.Path, p); err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	s, err := field(p.data, vs.Field)
	if err != nil {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	v, err := rules.CheckValue(src, []byte(s))
	if err != nil {
		return secret.Value{}, time.Time{}, err
	}
	var expires time.Time
	if p.ttl > 0 {
		expires = p.readAt.Add(p.ttl)
	}
	if te := sess.expires(); !te.IsZero() && (expires.IsZero() || te.Before(expires)) {
		expires = te
	}
	return v, expires, nil
}

// session returns the logged-in session for vs's section, and the state of
// vs's path within it. A new section (address, auth, a rotated token)
// starts a new session and forgets the paths of the old one.
func (k *Kind) session(ctx context.Context, vs rules.VaultSource) (*session, *path, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	id, err := sessionID(vs.Vault)
	if err != nil {
		return nil, nil, err
	}
	if k.sess == nil || k.sess.id != id {
		s, err := newSession(vs.Vault, id)
		if err != nil {
			return nil, nil, err
		}
		k.sess, k.paths = s, map[string]*path{}
	}
	if err := k.sess.ensure(ctx, k.now()); err != nil {
		return nil, nil, err
	}
	p := k.paths[vs.Path]
	if p == nil {
		p = &path{}
		k.paths[vs.Path] = p
	}
	return k.sess, p, nil
}

// refresh makes p's data current: shared from a read moments ago, kept
// while its lease is young, renewed when the lease is renewable, read
// again otherwise.
func (k *Kind) refresh(ctx context.Context, sess *session, name string, p *path) error {
	now := k.now()
	if p.data != nil {
		age := now.Sub(p.readAt)
		switch {
		case age < shareWindow && (p.ttl == 0 || age < p.ttl*2/3):
			return nil // another secret of this path read it in this resolve
		case p.leaseID != "" && age < p.ttl*2/3:
			return nil // the lease is young: one lease, not a new one per reload
		case p.leaseID != "" && p.renewable && age < p.ttl:
			if err := k.renew(ctx, sess, p, now); err == nil {
				return nil
			}
			// Not renewed (max TTL reached, revoked): read it again.
		}
	}
	sec, err := sess.client.Logical().ReadWithContext(ctx, name)
	if err != nil {
		return describe(err, sess.addr)
	}
	if sec == nil || sec.Data == nil {
		return errors.New("Vault has no secret at this path (404)")
	}
	p.data, p.readAt = sec.Data, now
	p.leaseID, p.renewable = sec.LeaseID, sec.Renewable
	p.ttl = time.Duration(sec.LeaseDuration) * time.Second
	return nil
}

// renew extends p's lease by its duration.
func (k *Kind) renew(ctx context.Context, sess *session, p *path, now time.Time) error {
	sec, err := sess.client.Sys().RenewWithContext(ctx, p.leaseID, int(p.ttl.Seconds()))
	if err != nil {
		return describe(err, sess.addr)
	}
	if sec == nil || sec.LeaseDuration <= 0 {
		return errors.New("the lease was not renewed")
	}
	p.readAt, p.renewable = now, sec.Renewable
	p.ttl = time.Duration(sec.LeaseDuration) * time.Second
	if sec.LeaseID != "" {
		p.leaseID = sec.LeaseID
	}
	return nil
}

// field returns FIELD of a secret's data: data.data.FIELD for KV version
// 2 (whose data holds "data" and "metadata" objects), else data.FIELD.
func field(data map[string]any, name string) (string, error) {
	if inner, ok := data["data"].(map[string]any); ok {
		if _, v2 := data["metadata"].(map[string]any); v2 {
			data = inner
		}
	}
	v, ok := data[name]
	if !ok {
		return "", errors.New("the secret has no such field")
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", errors.New("the field is not a string")
}

var _ rules.Kind = (*Kind)(nil)
