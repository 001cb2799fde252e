package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxQuery bounds the statement text of a postgres record, in bytes.
const MaxQuery = 1024

// ProtocolPostgres is the protocol of the PostgreSQL front's records.
const ProtocolPostgres = "postgres"

// Statement is one audit line of the PostgreSQL front: one statement an
// agent ran through a database handle, or one refused login or statement.
// It never holds a Bind parameter value, a password or a token: it has no
// field for one.
type Statement struct {
	Time      time.Time // when the statement was sent; zero means when logged
	RequestID string    // the session's id, shared by its statements
	Agent     string
	TokenID   string // the minted token's id; "" for a static token
	Database  string // the handle
	Role      string // the temporary role that served the task; "" for the configured user
	Query     string // the statement text; cut to MaxQuery bytes when logged
	Rows      int64  // rows returned or affected, from the command tag
	Status    string // "ok", or the SQLSTATE of the error
	Decision  string // Allow, or Deny for what keyhole refused
	Reason    string // the refusal's reason; "" when allowed
	Duration  time.Duration
}

// Statement writes s as one line.
func (l *Logger) Statement(s *Statement) error {
	if l == nil {
		return nil
	}
	rec := slog.NewRecord(s.Time, slog.LevelInfo, "", 0)
	attrs := []slog.Attr{
		slog.String("request_id", s.RequestID),
		slog.String("protocol", ProtocolPostgres),
		slog.String("agent", s.Agent),
		slog.String("token_id", s.TokenID),
		slog.String("database", s.Database),
	}
	if s.Role != "" {
		attrs = append(attrs, slog.String("role", s.Role))
	}
	attrs = append(attrs,
		slog.String("query", truncateUTF8(s.Query, MaxQuery)),
		slog.Int64("rows", s.Rows),
		slog.String("status", s.Status),
		slog.String("decision", s.Decision),
		slog.String("reason", s.Reason),
		slog.Float64("duration_ms", float64(s.Duration.Microseconds())/1000),
	)
	rec.AddAttrs(attrs...)
	return l.handle(rec)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// status is an audit line's "status": an HTTP status number, or the
// text status of a postgres record ("ok" or a SQLSTATE).
type status struct {
	code int
	text string
}

func (f *status) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &f.text)
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return errors.New("want a number or a string")
	}
	f.code = n
	return nil
}

// PostgresEntry is what a postgres record (see Statement) has besides the
// fields of Entry; it is zero for other lines.
type PostgresEntry struct {
	Protocol string // ProtocolPostgres
	Database string
	Role     string
	Query    string
	Rows     int64
	Status   string // "ok" or a SQLSTATE
}

// wirePostgres is a PostgresEntry as JSON spells it ("status" is shared
// with HTTP records: see status).
type wirePostgres struct {
	Protocol string `json:"protocol"`
	Database string `json:"database"`
	Role     string `json:"role"`
	Query    string `json:"query"`
	Rows     int64  `json:"rows"`
}

// checkStatus accepts a text status only on a postgres record, and only
// "ok" or a SQLSTATE (five digits or upper-case letters).
func (w *wireEntry) checkStatus() error {
	t := w.Status.text
	if t == "" {
		return nil
	}
	valid := w.Protocol == ProtocolPostgres && (t == "ok" || len(t) == 5 && !strings.ContainsFunc(t, func(r rune) bool {
		return !('0' <= r && r <= '9' || 'A' <= r && r <= 'Z')
	}))
	if !valid {
		return errors.New("audit: parse entry: status: want int, not string")
	}
	return nil
}

func (w *wireEntry) postgres() PostgresEntry {
	return PostgresEntry{Protocol: w.Protocol, Database: w.Database, Role: w.Role, Query: w.Query, Rows: w.Rows, Status: w.Status.text}
}

// appendStatement formats a postgres record: time, agent, decision,
// status, "postgres", the handle (and role), the query, rows or the
// refusal's reason, and the duration:
//
//	10:30:00.123  analyst     allow  ok     postgres DB_PROD  SELECT count(*) FROM users  rows=1  0.82ms
func (p *Printer) appendStatement(b []byte, e *Entry) []byte {
	b = appendCol(b, printable(e.Agent), 10)
	colour := red
	if e.Decision == Allow {
		colour = green
	}
	b = p.paint(append(b, "  "...), colour, fmt.Sprintf("%-5s", printable(e.Decision)))
	b = appendCol(b, printable(e.Postgres.Status), 5)
	db := e.Postgres.Database
	if e.Postgres.Role != "" {
		db += "(" + e.Postgres.Role + ")"
	}
	b = appendCol(b, "postgres "+printable(db), 32)
	q := "-"
	if e.Postgres.Query != "" {
		q = escape(e.Postgres.Query)
	}
	b = append(append(b, "  "...), q...)
	if e.Reason != "" {
		b = p.paint(append(b, "  "...), red, printable(e.Reason))
	} else {
		b = append(append(b, "  rows="...), strconv.FormatInt(e.Postgres.Rows, 10)...)
	}
	b = append(append(b, "  "...), formatDuration(e.Duration)...)
	return append(b, '\n')
}
