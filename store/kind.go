package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"keyhole/rules"
	"keyhole/secret"
)

// Kind reads store: sources from a Store for a rules.Loader. A name the
// store does not hold is rules.ErrGone: a deleted secret stops being
// served at once, not when it would have expired.
type Kind struct {
	// Store is read; nil makes every read fail with Err.
	Store Store
	// Err is why there is no Store (the store could not be opened here).
	Err error
}

// Read returns the entry src names.
func (k Kind) Read(ctx context.Context, src rules.Source) (secret.Value, time.Time, error) {
	ss, ok := src.(rules.StoreSource)
	if !ok {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: not a store: source", src)
	}
	if k.Store == nil {
		err := k.Err
		if err == nil {
			err = errors.New("no store")
		}
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: %w", src, err)
	}
	e, err := k.Store.Get(ctx, ss.Name)
	if errors.Is(err, ErrNotFound) {
		return secret.Value{}, time.Time{}, gone(fmt.Sprintf("%s: not in the store (keyhole secret set %s)", src, ss.Name))
	}
	if err != nil {
		return secret.Value{}, time.Time{}, err // names the store file
	}
	v, err := rules.CheckValue(src, []byte(e.Value.Reveal()))
	return v, e.Expires, err
}

// gone is an error that is rules.ErrGone without saying so.
type gone string

func (g gone) Error() string        { return string(g) }
func (g gone) Is(target error) bool { return target == rules.ErrGone }

var _ rules.Kind = Kind{}
