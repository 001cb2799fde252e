package inject

import (
	"fmt"
	"net/http"
	"strings"
)

// Reason is the machine-readable code of a refusal, as listed in the
// contract's Refusals table.
type Reason string

// The refusal reasons. Status maps each to its HTTP status.
const (
	UnknownSecret        Reason = "unknown_secret"
	HostNotAllowed       Reason = "host_not_allowed"
	HeaderNotAllowed     Reason = "header_not_allowed"
	MethodNotAllowed     Reason = "method_not_allowed"
	PathNotAllowed       Reason = "path_not_allowed"
	PlaintextNotAllowed  Reason = "plaintext_not_allowed"
	AgentNotAllowed      Reason = "agent_not_allowed"
	EgressDenied         Reason = "egress_denied"
	PrivateAddress       Reason = "private_address"
	HostMismatch         Reason = "host_mismatch"
	BadRequest           Reason = "bad_request"
	ProxyAuthRequired    Reason = "proxy_auth_required"
	TokenExpired         Reason = "token_expired"
	TokenRevoked         Reason = "token_revoked"
	SecretUnavailable    Reason = "secret_unavailable"
	UpstreamTLS          Reason = "upstream_tls"
	UpstreamUnreachable  Reason = "upstream_unreachable"
	UpstreamTimeout      Reason = "upstream_timeout"
	UnscrubbableEncoding Reason = "unscrubbable_encoding"
	ShuttingDown         Reason = "shutting_down"
	ClientClosed         Reason = "client_closed"
	// UnsupportedSignature refuses a request signed in a way keyhole cannot
	// re-sign: a presigned URL or SigV4a naming a placeholder.
	UnsupportedSignature Reason = "unsupported_signature"
	// ShareNotAllowed refuses a share the agent's share policy does not
	// allow (secret or recipient).
	ShareNotAllowed Reason = "share_not_allowed"
	// IntakeNotAllowed refuses an intake the agent's intake policy does not
	// allow.
	IntakeNotAllowed Reason = "intake_not_allowed"
	// NotFound answers an unknown share, intake or path on keyhole.internal.
	NotFound Reason = "not_found"
	// StateUnavailable refuses a minted token while the shared state store
	// is unreachable: a revocation could have been missed.
	StateUnavailable Reason = "state_unavailable"
	// BudgetExceeded refuses a request over one of its agent's budgets.
	BudgetExceeded Reason = "budget_exceeded"
	// CaptureFailed replaces a response that matched a capture rule but
	// could not be captured: the agent gets none of it.
	CaptureFailed Reason = "capture_failed"
)

// statusClientClosed is the status audited for a request its agent broke
// off before it was complete (nginx's 499); the agent, gone, never sees it.
const statusClientClosed = 499

// Status returns the HTTP status of a refusal with this reason: 400 for a
// malformed request, 403 for a policy refusal, 407 for missing or stale
// proxy credentials (or a minted token while the shared state is
// unavailable), 404 for an unknown path of keyhole.internal, 429 over a
// budget, 499 for a request the agent broke off, 502 when the upstream
// (timeouts included), a secret source or a capture failed, 503 while
// shutting down.
func (r Reason) Status() int {
	switch r {
	case BadRequest:
		return http.StatusBadRequest
	case ProxyAuthRequired, TokenExpired, TokenRevoked, StateUnavailable:
		return http.StatusProxyAuthRequired
	case NotFound:
		return http.StatusNotFound
	case BudgetExceeded:
		return http.StatusTooManyRequests
	case SecretUnavailable, UpstreamTLS, UpstreamUnreachable, UpstreamTimeout, UnscrubbableEncoding, CaptureFailed:
		return http.StatusBadGateway
	case ShuttingDown:
		return http.StatusServiceUnavailable
	case ClientClosed:
		return statusClientClosed
	default:
		return http.StatusForbidden
	}
}

// Refusal is a decision not to forward a request. Its Message is a sentence
// an agent can read and act on; it names secrets and hosts, never a value.
type Refusal struct {
	Reason  Reason
	Secret  string // the secret concerned, if any
	Host    string // the destination host, if known
	Message string // starts with "keyhole: "
}

// Error returns the refusal's message.
func (r *Refusal) Error() string { return r.Message }

// Status returns the HTTP status of the refusal.
func (r *Refusal) Status() int { return r.Reason.Status() }

// Refuse returns a refusal whose message is "keyhole: " followed by the
// formatted text.
func Refuse(reason Reason, secretName, host, format string, args ...any) *Refusal {
	return &Refusal{
		Reason:  reason,
		Secret:  secretName,
		Host:    host,
		Message: "keyhole: " + fmt.Sprintf(format, args...),
	}
}

// list joins items for a message: "a", "a or b", "a, b or c".
func list(items []string) string {
	switch len(items) {
	case 0:
		return "nothing"
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
