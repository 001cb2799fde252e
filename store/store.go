// Package store is keyhole's own secret store: named values encrypted at
// rest, behind a small interface ([Store]) so that a store shared by
// replicas (Redis) can replace the file in the state dir without touching
// its callers.
//
// The file store ([File]) keeps every entry in one file of the state dir,
// store.enc, sealed with AES-256-GCM under a key derived from the store key
// (store.key in the state dir, mode 0600, or KEYHOLE_STORE_KEY). Writers
// take a lock, write a temporary file, fsync it and rename it over the old
// one, so that concurrent writers lose no update and readers see the whole
// old file or the whole new one. A file that fails authentication
// (tampered, truncated, or sealed under another key) is refused with an
// error naming the file and saying which of these it is, never read in
// part.
//
// Entries carry their origin (set by an operator, captured from a
// response, or taken in from a human), the agent they belong to and an
// optional expiry. [Store.List] returns fingerprints (an HMAC of the value
// under a key of its own), never values.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"keyhole/secret"
)

// Origin says how a value came into the store.
type Origin string

// The origins of values.
const (
	// OriginSet is a value an operator stored with `keyhole secret set`.
	OriginSet Origin = "set"
	// OriginCaptured is a credential captured from an upstream response.
	OriginCaptured Origin = "captured"
	// OriginIntake is a value a human handed in through an intake link.
	OriginIntake Origin = "intake"
)

// Entry is one stored value and what is known about it.
type Entry struct {
	// Name is the entry's name, as in store:NAME.
	Name string
	// Value is the credential.
	Value secret.Value
	// Origin says how the value came in; empty means OriginSet.
	Origin Origin
	// Owner is the agent the value belongs to; empty means none in
	// particular (an operator's value).
	Owner string
	// Created and Updated are when the entry was first stored and last
	// replaced; Put sets both.
	Created, Updated time.Time
	// Expires is when the value stops being valid; zero means never.
	Expires time.Time
	// Policy is where a captured or taken-in value may be sent; nil for a
	// value an operator set (its rule is in the rules file).
	Policy *Policy
}

// Policy is where a stored value may be sent, spelled as the rules file's
// fields of a secret (hosts, headers, methods, paths, allow_plaintext) and
// checked by the rules package when the value becomes a secret.
type Policy struct {
	Hosts          []string `json:"hosts"`
	Headers        []string `json:"headers,omitempty"`
	Methods        []string `json:"methods,omitempty"`
	Paths          []string `json:"paths,omitempty"`
	AllowPlaintext bool     `json:"allow_plaintext,omitempty"`
}

// Info describes an entry without its value.
type Info struct {
	Name    string    `json:"name"`
	Origin  Origin    `json:"origin"`
	Owner   string    `json:"owner,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Expires time.Time `json:"expires,omitzero"`
	// Policy is the entry's policy, if it has one.
	Policy *Policy `json:"policy,omitempty"`
	// Fingerprint is an HMAC-SHA-256 of the value under the store's
	// fingerprint key, in hex, shortened: equal values have equal
	// fingerprints, and it says nothing about the value.
	Fingerprint string `json:"fingerprint"`
}

// Store holds named secret values. Implementations are safe for concurrent
// use, also by several processes sharing the store.
type Store interface {
	// Get returns the entry named name, or an error wrapping ErrNotFound.
	// An entry past its expiry is not found.
	Get(ctx context.Context, name string) (Entry, error)
	// Put stores e, replacing the entry of the same name (whose Created
	// time it keeps).
	Put(ctx context.Context, e Entry) error
	// Delete removes the entry named name, or returns an error wrapping
	// ErrNotFound.
	Delete(ctx context.Context, name string) error
	// List describes every entry, sorted by name.
	List(ctx context.Context) ([]Info, error)
	// Watch returns a channel that receives a value soon (within a second)
	// after the store changes, by this process or another, until ctx
	// ends. Changes that follow each other closely may arrive as one.
	Watch(ctx context.Context) <-chan struct{}
}

// ErrNotFound is wrapped by the error of Get and Delete for a name the
// store does not hold.
var ErrNotFound = errors.New("no such secret in the store")

// MaxValueSize bounds a stored value, like every other source's.
const MaxValueSize = 64 << 10

// MaxNameLen bounds an entry's name.
const MaxNameLen = 128

// CheckName reports whether name may name an entry: letters, digits and
// '_', not starting with a digit, at most MaxNameLen bytes (a secret's
// name, so that store:NAME and <<NAME>> spell alike).
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("a name has 1 to %d characters", MaxNameLen)
	}
	for i, c := range name {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return errors.New("a name has letters, digits and '_', not starting with a digit")
		}
	}
	return nil
}

// checkEntry validates e before it is stored.
func checkEntry(e Entry) error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	switch e.Origin {
	case OriginSet, OriginCaptured, OriginIntake:
	default:
		return fmt.Errorf("unknown origin %q", e.Origin)
	}
	if e.Policy != nil && len(e.Policy.Hosts) == 0 {
		return errors.New("the policy names no host")
	}
	n := e.Value.Len()
	if n == 0 {
		return errors.New("the value is empty")
	}
	if n > MaxValueSize {
		return fmt.Errorf("the value is larger than %d bytes", MaxValueSize)
	}
	for i, c := range []byte(e.Value.Reveal()) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("the value has a control character at byte %d; it cannot be sent in a header", i)
		}
	}
	return nil
}
