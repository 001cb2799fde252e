// Package audit writes keyhole's audit log: one JSON object a line, one per
// request an agent made (inside tunnels, one per inner request), refused ones
// included, plus one per refused CONNECT and per rules reload.
//
// A record answers "which agent sent which secret where, and what was
// refused". Its keys are constant and it is built from an allowlist of
// fields: it never holds a secret value, a header value, a token or a query
// string, because no field of Record can carry one.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one audit line for one request.
type Record struct {
	Time      time.Time // when the request arrived; zero means when Log is called
	RequestID string
	Agent     string
	TokenID   string // id of the minted token the agent used; "" for a static token
	Method    string
	Scheme    string
	Host      string
	Port      int
	Path      string // URL path only, never the query
	Status    int
	Decision  string // "allow" or "deny"
	Reason    string // refusal reason; "" when allowed
	Secrets   []string
	Scrubbed  int
	Duration  time.Duration
	BytesOut  int64  // response body bytes delivered to the agent
	Error     string // a fixed description of an upstream failure, never a value
}

// Decisions.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Logger writes audit records through log/slog's JSON handler. A nil
// *Logger discards records.
type Logger struct {
	h      slog.Handler
	failed atomic.Int64
}

// New returns a Logger writing JSON lines to w. Writes are serialized; one
// record is one Write call.
func New(w io.Writer) *Logger {
	return &Logger{h: slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: replaceAttr})}
}

// replaceAttr drops slog's level and message keys, which an audit line does
// not need, and writes the time in UTC with milliseconds.
func replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey, slog.MessageKey:
		return slog.Attr{}
	case slog.TimeKey:
		return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	}
	return a
}

// Log writes r. It returns the writer's error, if any; callers on the
// request path may ignore it because Failures counts it.
func (l *Logger) Log(r *Record) error {
	if l == nil {
		return nil
	}
	rec := slog.NewRecord(r.Time, slog.LevelInfo, "", 0)
	secrets := r.Secrets
	if secrets == nil {
		secrets = []string{}
	}
	rec.AddAttrs(
		slog.String("request_id", r.RequestID),
		slog.String("agent", r.Agent),
		slog.String("token_id", r.TokenID),
		slog.String("method", r.Method),
		slog.String("scheme", r.Scheme),
		slog.String("host", r.Host),
		slog.Int("port", r.Port),
		slog.String("path", r.Path),
		slog.Int("status", r.Status),
		slog.String("decision", r.Decision),
		slog.String("reason", r.Reason),
		slog.Any("secrets", secrets),
		slog.Int("scrubbed", r.Scrubbed),
		slog.Float64("duration_ms", float64(r.Duration.Microseconds())/1000),
		slog.Int64("bytes_out", r.BytesOut),
	)
	if r.Error != "" {
		rec.AddAttrs(slog.String("error", r.Error))
	}
	return l.handle(rec)
}

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
	err := l.h.Handle(context.Background(), rec)
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

// Next returns a new request id such as "3f9a0c12be47-1a".
func (ids *IDs) Next() string {
	return ids.prefix + strconv.FormatUint(ids.n.Add(1), 36)
}

// Open returns a Logger for the KEYHOLE_AUDIT_LOG setting: "-" (or "") is
// stdout, anything else a file that records are appended to, created 0640
// if missing. The returned *File closes the file (a no-op for stdout) and
// reopens it after the log was rotated.
func Open(path string, stdout io.Writer) (*Logger, *File, error) {
	if path == "" || path == "-" {
		return New(stdout), &File{}, nil
	}
	f := &File{path: path}
	if err := f.Reopen(); err != nil {
		return nil, nil, err
	}
	return New(f), f, nil
}

// File is an audit log file that can be reopened, so that logrotate can
// move it away and signal keyhole (SIGHUP) to start a new one. The zero
// File is stdout's: Reopen and Close do nothing.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Write appends p to the current file.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return 0, os.ErrClosed
	}
	return f.f.Write(p)
}

// Reopen opens the path again (creating it if rotation moved it away) and
// closes the previous file.
func (f *File) Reopen() error {
	if f.path == "" {
		return nil
	}
	nf, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit: open log: %w", err)
	}
	f.mu.Lock()
	old := f.f
	f.f = nf
	f.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	return err
}
