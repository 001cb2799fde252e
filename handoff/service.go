package handoff

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/secret"
	"keyhole/store"
)

// Service is the hand-off service: the agents' API on keyhole.internal
// (ServeAgent), what the handoff listener's pages need (it implements
// Pages), the operator's shares (Share), and the sweeper (Run).
type Service struct {
	cfg Config
	// counters, read by RegisterMetrics' functions.
	sharesCreated, sharesViewed, sharesExpired          atomic.Int64
	intakesRequested, intakesFulfilled, intakesDeclined atomic.Int64
	intakesExpired, deliveriesFailed                    atomic.Int64

	knownMu sync.Mutex
	known   map[string]bool // share ids already audited, see auditOperatorShares
}

// Config holds a Service's dependencies.
type Config struct {
	// State keeps the records. Required.
	State State
	// Store receives the values humans hand in, and holds the captured
	// values agents share. Required.
	Store store.Store
	// Rules returns the rules in force. Required.
	Rules func() *rules.Set
	// RefreshStored makes values just stored usable at once (the proxy's
	// RefreshStored); nil means none (the store's watch catches up).
	RefreshStored func(context.Context) error
	// Audit receives the events; nil means none.
	Audit *audit.Logger
	// Log is the operational log; nil means none. It never receives a
	// value, a key or a link.
	Log *slog.Logger
	// Client posts to the recipients' webhooks; nil means a client from
	// NewWebhookClient with the system roots.
	Client *http.Client
	// Tries is how many times a delivery is attempted; 0 means 3.
	Tries int
	// Backoff is the wait before the second try, doubled for each next
	// one; 0 means 500ms.
	Backoff time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns a Service with the dependencies in cfg.
func New(cfg Config) (*Service, error) {
	if cfg.State == nil || cfg.Store == nil || cfg.Rules == nil {
		return nil, errors.New("handoff: State, Store and Rules are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Client == nil {
		cfg.Client = NewWebhookClient(nil, cfg.Rules)
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}, nil
}

// Limits of the requests the service takes.
const (
	// MaxNote bounds a share's note and an intake's reason, in bytes.
	MaxNote = 500
	// MaxIntakeHosts bounds the hosts an intake asks for.
	MaxIntakeHosts = 16
	// DefaultExpiry is a share's or intake's expiry when the request names
	// none (at most max_ttl).
	DefaultExpiry = time.Hour
	// maxUserAgent bounds the user agent an audit event keeps.
	maxUserAgent = 256
)

// event writes an audit event; a failure to write goes to the log.
func (s *Service) event(name string, attrs ...slog.Attr) {
	if err := s.cfg.Audit.Event(s.cfg.Now(), name, attrs...); err != nil {
		s.cfg.Log.Error("audit event failed", "event", name, "err", err)
	}
}

// section returns the handoff section in force, or a refusal.
func (s *Service) section(reason inject.Reason) (*rules.Set, *rules.Handoff, *inject.Refusal) {
	set := s.cfg.Rules()
	if set == nil || set.Handoff == nil {
		return nil, nil, inject.Refuse(reason, "", "", "the rules have no handoff section: hand-offs are off")
	}
	return set, set.Handoff, nil
}

// expiry returns the expiry of a request asking for d ("" means
// DefaultExpiry), bounded by max.
func expiry(d string, maxTTL time.Duration) (time.Duration, *inject.Refusal) {
	if d == "" {
		return min(DefaultExpiry, maxTTL), nil
	}
	v, err := time.ParseDuration(d)
	switch {
	case err != nil:
		return 0, inject.Refuse(inject.BadRequest, "", "", "expires_in is not a duration (want e.g. 1h or 30m)")
	case v <= 0:
		return 0, inject.Refuse(inject.BadRequest, "", "", "expires_in must be more than 0")
	case v > maxTTL:
		return 0, inject.Refuse(inject.BadRequest, "", "", "expires_in must be at most %s (the handoff section's max_ttl)", maxTTL)
	}
	return v, nil
}

// checkText checks a note or reason a human will read: bounded, one line
// of printable text.
func checkText(field, t string) *inject.Refusal {
	if len(t) > MaxNote {
		return inject.Refuse(inject.BadRequest, "", "", "%s is longer than %d bytes", field, MaxNote)
	}
	if strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\uFFFD' }) {
		return inject.Refuse(inject.BadRequest, "", "", "%s must be one line of text without control characters", field)
	}
	return nil
}

// viewerAttrs are a page viewer's audit attributes.
func viewerAttrs(v Viewer) []slog.Attr {
	ua := v.UserAgent
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return []slog.Attr{slog.String("viewer_addr", v.Addr), slog.String("user_agent", strings.ToValidUTF8(ua, ""))}
}

// value returns the value of the secret named name that agent may hand out
// (agent "" is the operator, who may hand out any), or a refusal, from the
// rules in force. A secret of the rules file needs the agent's secrets list
// (and grant); a stored captured or taken-in value needs the agent to own
// it, and is read from the store when the rules in force do not hold it
// yet (a capture a moment ago).
func (s *Service) value(ctx context.Context, set *rules.Set, id agentID, name string) (secret.Value, *inject.Refusal) {
	notAllowed := inject.Refuse(inject.ShareNotAllowed, name, "", "agent %s may not share %s", id.name, name)
	if id.name != "" && id.grant != nil && !id.grant.AllowsSecret(name) {
		return secret.Value{}, inject.Refuse(inject.ShareNotAllowed, name, "", "the token does not allow %s", name)
	}
	if sec := set.Secrets[name]; sec != nil && (id.name == "" || sec.Owner == id.name || sec.Owner == "" && id.agent.MayUse(name)) {
		if sec.Kind.Minted() {
			return secret.Value{}, inject.Refuse(inject.ShareNotAllowed, name, "", "%s is minted per request (kind %s) and cannot be shared", name, sec.Kind)
		}
		v, err := sec.Value()
		if err != nil || v.IsZero() {
			return secret.Value{}, inject.Refuse(inject.SecretUnavailable, name, "", "the value of %s is unavailable", name)
		}
		return v, nil
	}
	if store.CheckName(name) != nil {
		return secret.Value{}, notAllowed
	}
	e, err := s.cfg.Store.Get(ctx, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if id.name == "" {
			return secret.Value{}, inject.Refuse(inject.UnknownSecret, name, "", "no secret named %s", name)
		}
		return secret.Value{}, notAllowed
	case err != nil:
		s.cfg.Log.Error("handoff: reading the store failed", "secret", name, "err", err)
		return secret.Value{}, inject.Refuse(inject.SecretUnavailable, name, "", "the value of %s is unavailable", name)
	case id.name != "" && (e.Owner != id.name || e.Origin == store.OriginSet || e.Origin == ""):
		return secret.Value{}, notAllowed
	}
	return e.Value, nil
}

// brief quotes a short name-like value for a message; anything longer or
// odder is left out, since it could be a misplaced credential.
func brief(s string) string {
	if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r > 0x7e }) {
		return "(a recipient)"
	}
	return s
}
