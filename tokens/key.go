package tokens

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

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
	path := filepath.Join(stateDir, KeyFile)
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("load token key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("load token key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("load token key: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("load token key: %s has mode %04o, accessible by group or others; run `chmod 600 %s`", path, perm, path)
	}
	// The file is a few dozen bytes; read a little more to notice junk.
	data, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return Key{}, fmt.Errorf("load token key: %w", err)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != keySize {
		return Key{}, fmt.Errorf("load token key: %s does not hold a base64 key of %d bytes", path, keySize)
	}
	k := Key{set: true}
	copy(k.b[:], raw)
	clear(raw)
	return k, nil
}

// LoadOrCreateKey loads the Key from the file KeyFile in stateDir, creating
// stateDir (mode 0700) and a new random key file (mode 0600) when the file
// does not exist. Creation is atomic: concurrent callers all end up with the
// same key, and no caller ever reads a partly written file.
func LoadOrCreateKey(stateDir string) (Key, error) {
	k, err := LoadKey(stateDir)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return Key{}, fmt.Errorf("create token key: %w", err)
	}
	k, err = GenerateKey()
	if err != nil {
		return Key{}, err
	}
	if err := createKeyFile(filepath.Join(stateDir, KeyFile), k); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadKey(stateDir) // another process won the race
		}
		return Key{}, fmt.Errorf("create token key: %w", err)
	}
	return k, nil
}

// createKeyFile writes k to a temporary file and links it to path, so that
// path appears complete or not at all and an existing file is never replaced.
func createKeyFile(path string, k Key) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+KeyFile+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	text := base64.StdEncoding.EncodeToString(k.b[:]) + "\n"
	if _, err := io.WriteString(tmp, text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

var (
	_ fmt.Stringer   = Key{}
	_ fmt.GoStringer = Key{}
	_ fmt.Formatter  = Key{}
	_ slog.LogValuer = Key{}
)
