// Package audit writes keyhole's audit log: one JSON object a line, one per
// request an agent made (inside tunnels, one per inner request), refused ones
// included, plus one per refused CONNECT and per rules reload.
//
// A record answers "which agent sent which secret where, and what was
// refused". Its keys are constant and it is built from an allowlist of
// fields: it never holds a secret value, a header value, a token or a query
// string, because no field of Record can carry one.
//
// The log is tamper-evident: with OpenChained (as keyhole serve writes it)
// every line ends with "prev", the hash of the line before, and "hash", an
// HMAC-SHA256 of the line under a key in the state dir, and the chain
// continues across rotation and restarts. Verify checks a log and names
// the first line that was changed, removed or moved; chain.go says exactly
// what is hashed.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"keyhole/secret"
)

// Record is one audit line for one request.
type Record struct {
	Time      time.Time // when the request arrived; zero means when Log is called
	RequestID string
	Agent     string
	TokenID   string // id of the minted token the agent used; "" for a static token
	// TokenIDs is the minted token's id chain, root first, ending with
	// TokenID; written as token_ids only when it has more than one id
	// (an attenuated token).
	TokenIDs []string
	// TokenUnverified marks credentials that did not verify (a wrong
	// static token, a token whose signature does not hold): Agent and the
	// token ids are what they claimed. Written as "token_verified":false
	// when set, and left out otherwise.
	TokenUnverified bool
	Method          string
	Scheme          string
	Host            string
	Port            int
	Path            string // URL path only, never the query
	Status          int
	Decision        string // "allow" or "deny"
	Reason          string // refusal reason; "" when allowed
	Secrets         []string
	Scrubbed        int
	Duration        time.Duration
	BytesOut        int64  // response body bytes delivered to the agent
	Error           string // a fixed description of an upstream failure, never a value
	Session         string // the STS session name an aws_sigv4 request was signed with
	Proto           string // "h2" for a request on an HTTP/2 stream; "" (left out) otherwise
	// Budget is the budget that refused a budget_exceeded request, as
	// "budgets[0] STRIPE_LIVE:100/1h"; "" (left out) otherwise.
	Budget string
	// Captured names the secrets a capture rule made of the response
	// (left out when none).
	Captured []string
	// CaptureError is why a response that matched a capture rule could
	// not be captured: a fixed class such as "not_json", never a value
	// (left out when none).
	CaptureError string
}

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Logger writes audit records through log/slog, with a handler that writes
// each record as one JSON object a line. A nil *Logger discards records.
type Logger struct {
	h      *lineHandler
	failed atomic.Int64
}

// New returns a Logger writing JSON lines to w. Writes are serialized; one
// record is one Write call.
func New(w io.Writer) *Logger {
	return &Logger{h: newLineHandler(w)}
}

// NewChained returns a Logger writing JSON lines to w, each sealed into the
// tamper-evident chain (see Verify) under key, the first with prev as its
// "prev" ("" starts a new chain). Writes are serialized in chain order; one
// record is one Write call.
func NewChained(w io.Writer, key secret.Value, prev string) *Logger {
	h := newLineHandler(w)
	h.chain, h.mu = newChain(key, prev), nil
	return &Logger{h: h}
}

// Log writes r. It returns the writer's error, if any; callers on the
// request path may ignore it because Failures counts it.
func (l *Logger) Log(r *Record) error {
	if l == nil {
		return nil
	}
	// The line is the one a slog record holding r as its one attribute
	// would make (slog inlines a group with an empty key), encoded field
	// by field without a slog record or a slog.Value per field.
	t := r.Time
	if t.IsZero() {
		t = time.Now() // every line has a time
	}
	return l.count(l.h.record(t, r))
}

// LogValue implements slog.LogValuer: the record's fields as an inline
// group, in the order of an audit line.
func (r *Record) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("request_id", r.RequestID),
		slog.String("agent", r.Agent),
		slog.String("token_id", r.TokenID),
	}
	if len(r.TokenIDs) > 1 {
		attrs = append(attrs, slog.Any("token_ids", r.TokenIDs))
	}
	if r.TokenUnverified {
		attrs = append(attrs, slog.Bool("token_verified", false))
	}
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("scheme", r.Scheme),
		slog.String("host", r.Host),
		slog.Int("port", r.Port),
		slog.String("path", r.Path),
		slog.Int("status", r.Status),
		slog.String("decision", r.Decision),
		slog.String("reason", r.Reason),
		slog.Any("secrets", r.secrets()),
		slog.Int("scrubbed", r.Scrubbed),
		slog.Float64("duration_ms", r.durationMS()),
		slog.Int64("bytes_out", r.BytesOut),
	)
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	if r.Session != "" {
		attrs = append(attrs, slog.String("session", r.Session))
	}
	if r.Proto != "" {
		attrs = append(attrs, slog.String("proto", r.Proto))
	}
	if r.Budget != "" {
		attrs = append(attrs, slog.String("budget", r.Budget))
	}
	if len(r.Captured) > 0 {
		attrs = append(attrs, slog.Any("captured", r.Captured))
	}
	if r.CaptureError != "" {
		attrs = append(attrs, slog.String("capture_error", r.CaptureError))
	}
	return slog.GroupValue(attrs...)
}

// secrets is the secret list as written: [] rather than null.
func (r *Record) secrets() []string {
	if r.Secrets == nil {
		return []string{}
	}
	return r.Secrets
}

// durationMS is the duration in milliseconds with microsecond precision.
func (r *Record) durationMS() float64 { return float64(r.Duration.Microseconds()) / 1000 }

// Event writes a record that is not about a request, such as a reload, at
// time t (zero means now). Its attributes must hold no secret.
func (l *Logger) Event(t time.Time, event string, attrs ...slog.Attr) error {
	if l == nil {
		return nil
	}
	rec := slog.NewRecord(t, slog.LevelInfo, "", 0)
	rec.AddAttrs(slog.String("event", event))
	rec.AddAttrs(attrs...)
	return l.handle(rec)
}

func (l *Logger) handle(rec slog.Record) error {
	if rec.Time.IsZero() {
		// slog would leave the time out, but every line must have one.
		rec.Time = time.Now()
	}
	return l.count(l.h.Handle(context.Background(), rec))
}

// count counts err, if any, as a record not written, and returns it.
func (l *Logger) count(err error) error {
	if err != nil {
		l.failed.Add(1)
	}
	return err
}

// Failures returns how many records could not be written.
func (l *Logger) Failures() int64 {
	if l == nil {
		return 0
	}
	return l.failed.Load()
}

// IDs makes request ids: a random per-process prefix and a counter, unique
// across restarts and cheap on the request path. The zero IDs is not usable;
// use NewIDs.
type IDs struct {
	prefix string
	n      atomic.Uint64
}

// NewIDs returns a request-id source.
func NewIDs() *IDs {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return &IDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// Next returns a new request id such as "3f9a0c12be47-1a", in one
// allocation.
func (ids *IDs) Next() string {
	var buf [32]byte // the prefix's 13 bytes and at most 13 digits
	return string(strconv.AppendUint(append(buf[:0], ids.prefix...), ids.n.Add(1), 36))
}

// Issued returns how many ids Next has returned.
func (ids *IDs) Issued() uint64 { return ids.n.Load() }
