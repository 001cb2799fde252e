package proxy

import (
	"context"
	"errors"
	"fmt"

	"keyhole/rules"
	"keyhole/store"
)

// RefreshStored reads the store's entries that carry a policy (captured
// and taken-in values) and swaps them into the policy at once, each a
// secret of its owner agent only (rules.Secret.Owner), scrubbed from every
// agent's responses like any secret. Values that left the store are
// retired like a secret removed from the rules. A name the rules file
// also uses stays the rules file's. Without a store it does nothing.
//
// keyhole serve calls it at start and whenever the store changes; the
// handoff service calls it after an intake is stored. An error (the store
// cannot be listed) leaves the stored secrets in force as they were; an
// entry that cannot be read or whose policy is invalid is left out and
// reported in the error, the others are swapped in.
func (p *Proxy) RefreshStored(ctx context.Context) error {
	if p.store == nil {
		return nil
	}
	p.refreshing.Lock()
	defer p.refreshing.Unlock()
	infos, err := p.store.List(ctx)
	if err != nil {
		return fmt.Errorf("stored secrets: %w", err)
	}
	var secrets []*rules.Secret
	var errs []error
	for _, info := range infos {
		if info.Policy == nil {
			continue // an operator's value: its rule is in the rules file
		}
		sec, err := p.storedSecret(ctx, info.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Deleted or expired since List.
		case err != nil:
			errs = append(errs, fmt.Errorf("stored secret %s: %w", info.Name, err))
		default:
			secrets = append(secrets, sec)
		}
	}
	p.retirement.mu.Lock()
	p.stored = secrets
	p.retirement.mu.Unlock()
	p.setPolicy(nil)
	return errors.Join(errs...)
}

// storedSecret reads the entry name and makes it a secret.
func (p *Proxy) storedSecret(ctx context.Context, name string) (*rules.Secret, error) {
	e, err := p.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if e.Policy == nil {
		return nil, store.ErrNotFound // replaced by an operator's value since List
	}
	pol := rules.StoredPolicy{
		Hosts: e.Policy.Hosts, Headers: e.Policy.Headers, Methods: e.Policy.Methods,
		Paths: e.Policy.Paths, AllowPlaintext: e.Policy.AllowPlaintext,
	}
	return rules.StoredSecret(e.Name, e.Owner, string(e.Origin), pol, e.Value, e.Expires)
}
