package store

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files of the store in the state dir.
const (
	// DataFile holds every entry, sealed.
	DataFile = "store.enc"
	// KeyFile holds the store key when KEYHOLE_STORE_KEY does not.
	KeyFile = "store.key"
	// FingerprintKeyFile holds the key of the fingerprints in List.
	FingerprintKeyFile = "store-fingerprint.key"
	// lockFile serializes writers.
	lockFile = "store.lock"
)

// KeyEnv is the variable that holds the store key instead of KeyFile: 32
// random bytes in standard base64 (`openssl rand -base64 32`).
const KeyEnv = "KEYHOLE_STORE_KEY"

// keys are what a store key yields: the AEAD key and a key id that tells a
// wrong key from a tampered file.
type keys struct {
	aead  []byte
	keyID []byte
	from  string // where the key came from, for messages
}

func deriveKeys(master []byte, from string) (keys, error) {
	aead, err := hkdf.Key(sha256.New, master, nil, "keyhole store v1 aead", 32)
	if err != nil {
		return keys{}, err
	}
	id, err := hkdf.Key(sha256.New, master, nil, "keyhole store v1 key id", 8)
	if err != nil {
		return keys{}, err
	}
	return keys{aead: aead, keyID: id, from: from}, nil
}

// loadKeys returns the store key from KEYHOLE_STORE_KEY (env), else from
// the key file in dir, created when create is set and it is missing.
func loadKeys(dir, env string, create bool) (keys, error) {
	if env != "" {
		b, err := decodeKey(env)
		if err != nil {
			return keys{}, fmt.Errorf("%s: %w", KeyEnv, err)
		}
		return deriveKeys(b, KeyEnv)
	}
	path := filepath.Join(dir, KeyFile)
	b, err := loadOrCreateKeyFile(path, create)
	if err != nil {
		return keys{}, err
	}
	return deriveKeys(b, path)
}

// decodeKey decodes a base64 key of exactly 32 bytes. Its error never
// quotes the text.
func decodeKey(text string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return nil, errors.New("not standard base64 (want 32 random bytes, e.g. openssl rand -base64 32)")
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("holds %d bytes, want 32", len(b))
	}
	return b, nil
}

// loadOrCreateKeyFile reads the base64 key at path, creating a random one
// (mode 0600, linked into place complete) when it is missing and create is
// set.
func loadOrCreateKeyFile(path string, create bool) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err == nil {
		b, err := decodeKey(string(text))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return nil, fmt.Errorf("store key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(b) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path) // never replaces a key another process made
	}
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKeyFile(path, false)
	}
	if err != nil {
		return nil, fmt.Errorf("store key: %w", err)
	}
	return b, nil
}
