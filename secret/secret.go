// Package secret holds credential values in a type that cannot leak by
// accident.
//
// A [Value] prints as "[REDACTED]" through every formatting path that Go
// offers: fmt verbs (%v, %s, %q, %x, %#v), log/slog, encoding/json and
// encoding.TextMarshaler. The raw bytes are reachable only through
// [Value.Reveal], which callers use at the one place where a credential is
// written to the wire or compiled into a matcher. Searching the code base for
// "Reveal(" lists every such place.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what a Value prints instead of its contents.
const Redacted = "[REDACTED]"

// Value is a credential. The zero Value is empty. Values are immutable and
// safe for concurrent use.
type Value struct {
	b string
}

// New returns a Value holding a copy of b.
func New(b []byte) Value { return Value{b: string(b)} }

// FromString returns a Value holding s.
func FromString(s string) Value { return Value{b: s} }

// Reveal returns the raw credential. Call it only where the value is written
// to the wire or compiled into a matcher, never to build a message.
func (v Value) Reveal() string { return v.b }

// Len returns the length of the credential in bytes.
func (v Value) Len() int { return len(v.b) }

// IsZero reports whether the Value is empty.
func (v Value) IsZero() bool { return v.b == "" }

// Equal reports, in constant time for equal lengths, whether v holds s.
func (v Value) Equal(s string) bool {
	return subtle.ConstantTimeCompare([]byte(v.b), []byte(s)) == 1
}

// String implements fmt.Stringer with a redaction.
func (Value) String() string { return Redacted }

// GoString implements fmt.GoStringer with a redaction.
func (Value) GoString() string { return "secret.Value(" + Redacted + ")" }

// Format implements fmt.Formatter so that every verb prints a redaction.
func (Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer with a redaction.
func (Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler with a redaction.
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with a redaction.
func (Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

var (
	_ fmt.Stringer   = Value{}
	_ fmt.GoStringer = Value{}
	_ fmt.Formatter  = Value{}
	_ slog.LogValuer = Value{}
)
