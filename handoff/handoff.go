// Package handoff hands credentials to humans and takes them from humans
// without the agent ever holding them: one-time share links and intake
// requests (CONTRACT.md Part 2, "Handing credentials to humans, and taking
// them from humans").
//
// This file and protocol.go are the seam between the parts: the records
// kept in a [State] (in the state dir, or in Redis for several replicas),
// the wire protocol between the pages a human opens and keyhole, and the
// cryptography both sides of that protocol use (crypto.go). The page's
// JavaScript implements the browser's half of crypto.go; SealAnswer and
// OpenShare are its Go twins, for tests.
package handoff

import (
	"context"
	"errors"
	"time"
)

// Limits of shares and intakes.
const (
	// MaxViews bounds the views of one share.
	MaxViews = 10
	// IDBytes is the length of a share's or intake's random id before
	// encoding: ids are unguessable, since a share's page tells its status
	// to whoever has its id.
	IDBytes = 16
	// KeyBytes is the length of a share's AES-256 key.
	KeyBytes = 32
	// CapabilityBytes is the length of an intake's answer capability.
	CapabilityBytes = 32
)

// Status is where a share or an intake stands.
type Status string

// Statuses of shares and intakes.
const (
	// StatusReady is a share with views left.
	StatusReady Status = "ready"
	// StatusViewed is a share whose last view was taken.
	StatusViewed Status = "viewed"
	// StatusExpired is a share or an intake past its expiry.
	StatusExpired Status = "expired"
	// StatusRevoked is a share an operator revoked.
	StatusRevoked Status = "revoked"
	// StatusPending is an intake waiting for its human.
	StatusPending Status = "pending"
	// StatusFulfilled is an intake the human answered.
	StatusFulfilled Status = "fulfilled"
	// StatusDeclined is an intake the human declined.
	StatusDeclined Status = "declined"
)

// Share is one share link's record. Keyhole never keeps the key: only the
// ciphertext, which nobody can read without the link's fragment.
type Share struct {
	ID     string `json:"id"`
	Agent  string `json:"agent"` // who created it ("" for an operator)
	Secret string `json:"secret"`
	To     string `json:"to"`
	Note   string `json:"note,omitempty"`
	// Ciphertext is the nonce followed by the AES-256-GCM sealed value
	// (see SealShare); empty once the share is no longer StatusReady.
	Ciphertext []byte `json:"ciphertext,omitempty"`
	// KeyCheck lets the page tell a damaged fragment from a good one
	// before it claims a view (see KeyCheck).
	KeyCheck  []byte    `json:"key_check"`
	Views     int       `json:"views"`      // views allowed
	ViewsLeft int       `json:"views_left"` // views not yet taken
	Status    Status    `json:"status"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
}

// Intake is one intake request's record.
type Intake struct {
	ID     string   `json:"id"`
	Agent  string   `json:"agent"` // who asks
	Name   string   `json:"name"`  // the secret's name once stored
	Hosts  []string `json:"hosts"` // where the agent wants to send it
	From   string   `json:"from"`  // the recipient asked
	Reason string   `json:"reason,omitempty"`
	// PrivateKey is the request's ECDH P-256 private key (its scalar, as
	// crypto/ecdh encodes it), and PublicKey its uncompressed public
	// point: the page encrypts to it.
	PrivateKey []byte `json:"private_key,omitempty"`
	PublicKey  []byte `json:"public_key"`
	// CapabilityHash is SHA-256 of the capability only the link carries.
	CapabilityHash []byte    `json:"capability_hash"`
	Status         Status    `json:"status"`
	GrantedHosts   []string  `json:"granted_hosts,omitempty"` // the hosts the human allowed
	Created        time.Time `json:"created"`
	Expires        time.Time `json:"expires"`
}

// State keeps share and intake records. Implementations are safe for
// concurrent use, also by several processes or replicas sharing the state:
// ClaimShare and FinishIntake are atomic across all of them. Records past
// their expiry are reported with StatusExpired and hold no ciphertext or
// private key.
type State interface {
	// PutShare stores a new share; an existing id is an error.
	PutShare(ctx context.Context, s Share) error
	// GetShare returns the share without taking a view.
	GetShare(ctx context.Context, id string) (Share, error)
	// ClaimShare takes one view of a StatusReady share and returns the
	// share as it was before (with its ciphertext); the last view leaves
	// a StatusViewed record without the ciphertext. Two claims racing for
	// the last view: one gets the share, the other ErrGone.
	ClaimShare(ctx context.Context, id string, now time.Time) (Share, error)
	// RevokeShare drops the ciphertext and marks the share revoked.
	RevokeShare(ctx context.Context, id string) error
	// ListShares returns every share, without ciphertexts.
	ListShares(ctx context.Context) ([]Share, error)
	// PutIntake stores a new intake; an existing id is an error.
	PutIntake(ctx context.Context, in Intake) error
	// GetIntake returns the intake.
	GetIntake(ctx context.Context, id string) (Intake, error)
	// FinishIntake moves a StatusPending intake to status (fulfilled or
	// declined) with the granted hosts, drops its private key and returns
	// the intake as it was before (with the key). An intake that is not
	// pending gives ErrGone: one answer wins.
	FinishIntake(ctx context.Context, id string, status Status, granted []string, now time.Time) (Intake, error)
	// Sweep marks what expired before now as StatusExpired (dropping
	// ciphertexts and keys), forgets records that expired long ago, and
	// returns the ids it marked expired.
	Sweep(ctx context.Context, now time.Time) (shares, intakes []string, err error)
}

// Errors of a State and of the service.
var (
	// ErrNotFound: no share or intake has this id.
	ErrNotFound = errors.New("handoff: not found")
	// ErrGone: the share or intake exists but can no longer be used (its
	// Status says why).
	ErrGone = errors.New("handoff: no longer available")
	// ErrBadCapability: the intake answer's capability is not the link's.
	ErrBadCapability = errors.New("handoff: the link's capability does not match")
	// ErrDamaged: a ciphertext or key failed authentication.
	ErrDamaged = errors.New("handoff: the link is damaged")
)
