package handoff

import (
	"context"
	"time"
)

// The pages a human opens are served by the handoff listener:
//
//	GET  /s/ID              the share page: only a "Reveal" button; consumes nothing
//	GET  /s/ID/meta         ShareMeta as JSON; consumes nothing
//	POST /s/ID/reveal       takes one view: RevealResponse, or 410 GoneResponse
//	GET  /i/ID              the intake page
//	GET  /i/ID/meta         IntakeMeta as JSON
//	POST /i/ID/answer       AnswerRequest: 204, or 403 (capability), 410 (gone), 400
//	POST /i/ID/decline      DeclineRequest: 204, or 403, 410
//	GET  /assets/NAME       the pages' embedded CSS and JavaScript
//
// Links: BASE_URL/s/ID#KEY and BASE_URL/i/ID#CAPABILITY.FINGERPRINT, every
// binary value base64url without padding (KEY: KeyBytes; CAPABILITY:
// CapabilityBytes; FINGERPRINT: SHA-256 of the intake's public key). The
// fragment never reaches keyhole: browsers do not send it.

// Path prefixes of the pages.
const (
	SharePath  = "/s/"
	IntakePath = "/i/"
	AssetPath  = "/assets/"
)

// ShareMeta is what GET /s/ID/meta says.
type ShareMeta struct {
	Status    Status    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
	ViewsLeft int       `json:"views_left"`
	Note      string    `json:"note,omitempty"`
	KeyCheck  string    `json:"key_check,omitempty"` // base64url; only while ready
}

// RevealResponse is what POST /s/ID/reveal returns for the view it took.
type RevealResponse struct {
	Ciphertext string `json:"ciphertext"` // base64url of nonce || sealed value
	ViewsLeft  int    `json:"views_left"`
}

// GoneResponse is the body of a 410 (and of a 404, with "not_found").
type GoneResponse struct {
	Status Status `json:"status"`
}

// IntakeMeta is what GET /i/ID/meta says.
type IntakeMeta struct {
	Status    Status    `json:"status"`
	Agent     string    `json:"agent"`
	Name      string    `json:"name"`
	Hosts     []string  `json:"hosts"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxBytes  int       `json:"max_bytes"`            // the largest value keyhole takes
	PublicKey string    `json:"public_key,omitempty"` // base64url; only while pending
}

// AnswerRequest is the body of POST /i/ID/answer: the value sealed to the
// intake's public key (see SealAnswer), and the hosts the human allows (a
// non-empty subset of the intake's).
type AnswerRequest struct {
	Capability   string   `json:"capability"`
	Hosts        []string `json:"hosts"`
	EphemeralKey string   `json:"ephemeral_key"` // uncompressed P-256 point
	Nonce        string   `json:"nonce"`
	Ciphertext   string   `json:"ciphertext"`
}

// DeclineRequest is the body of POST /i/ID/decline.
type DeclineRequest struct {
	Capability string `json:"capability"`
}

// Viewer is who opened a page, for the audit: the client's address and
// user agent.
type Viewer struct {
	Addr      string
	UserAgent string
}

// Pages is what the handoff listener's handlers need from the service.
// Errors are ErrNotFound, ErrGone (with the status), ErrBadCapability,
// ErrDamaged, or a *BadRequest.
type Pages interface {
	ShareMeta(ctx context.Context, id string) (ShareMeta, error)
	Reveal(ctx context.Context, id string, v Viewer) (RevealResponse, error)
	IntakeMeta(ctx context.Context, id string) (IntakeMeta, error)
	Answer(ctx context.Context, id string, a AnswerRequest, v Viewer) error
	Decline(ctx context.Context, id string, d DeclineRequest, v Viewer) error
}

// GoneError is ErrGone with the status that says why.
type GoneError struct{ Status Status }

func (e *GoneError) Error() string        { return "handoff: " + string(e.Status) }
func (e *GoneError) Is(target error) bool { return target == ErrGone }

// BadRequest is an answer the service refuses, with a message for the
// human (it never holds the value).
type BadRequest struct{ Message string }

func (e *BadRequest) Error() string { return e.Message }
