package tokens

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"keyhole/secret"
)

// KeyFile is the name of the token key's file in the state directory.
const KeyFile = "token-key"

// keySize is the length of a Key in bytes.
const keySize = 32

// Key is the secret that mints and verifies tokens: 32 random bytes. The zero
// Key is unusable; Mint and Verify refuse it. A Key prints as a redaction
// through fmt, log/slog, encoding/json and encoding.TextMarshaler.
type Key struct {
	b   [keySize]byte
	set bool
}

// GenerateKey returns a new random Key.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k.b[:]); err != nil {
		return Key{}, fmt.Errorf("generate token key: %w", err)
	}
	k.set = true
	return k, nil
}

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return !k.set }

// String implements fmt.Stringer with a redaction.
func (Key) String() string { return "tokens.Key(" + secret.Redacted + ")" }

// GoString implements fmt.GoStringer with a redaction.
func (k Key) GoString() string { return k.String() }

// Format implements fmt.Formatter so that every verb prints a redaction.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer with a redaction.
func (Key) LogValue() slog.Value { return slog.StringValue(secret.Redacted) }

// MarshalJSON implements json.Marshaler with a redaction.
func (Key) MarshalJSON() ([]byte, error) { return []byte(`"` + secret.Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler with a redaction.
func (Key) MarshalText() ([]byte, error) { return []byte(secret.Redacted), nil }

// LoadKey reads the Key from the file KeyFile in stateDir. The file holds the
// key in standard base64 and must not be accessible by group or others; the
// error for a wider mode names the path, the mode and the chmod that fixes it.
// A missing file is an error that matches fs.ErrNotExist.
func LoadKey(stateDir string) (Key, error) {
	v, err := secret.LoadKeyFile(filepath.Join(stateDir, KeyFile), keySize)
	if err != nil {
		return Key{}, fmt.Errorf("load token key: %w", err)
	}
	return keyOf(v), nil
}

// LoadOrCreateKey loads the Key from the file KeyFile in stateDir, creating
// stateDir (mode 0700) and a new random key file (mode 0600) when the file
// does not exist. Creation is atomic: concurrent callers all end up with the
// same key, and no caller ever reads a partly written file.
func LoadOrCreateKey(stateDir string) (Key, error) {
	v, err := secret.LoadOrCreateKeyFile(filepath.Join(stateDir, KeyFile), keySize)
	if err != nil {
		return Key{}, fmt.Errorf("load or create token key: %w", err)
	}
	return keyOf(v), nil
}

func keyOf(v secret.Value) Key {
	k := Key{set: true}
	copy(k.b[:], v.Reveal())
	return k
}

var (
	_ fmt.Stringer   = Key{}
	_ fmt.GoStringer = Key{}
	_ fmt.Formatter  = Key{}
	_ slog.LogValuer = Key{}
)
