package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"keyhole/secret"
)

// Sealer seals single values with the store key (AES-256-GCM under the
// same derived key as the store file), for state kept outside the state
// dir: the Redis that replicas share never holds a plaintext. Each sealed
// value is bound to a label (an entry's name, a credential's cache key), so
// that a value cannot be moved to another name.
type Sealer struct {
	keys  keys
	fpKey []byte
}

// sealMagic starts a sealed value: magic, key id, nonce, AES-256-GCM
// sealing with magic, key id and label as additional data.
var sealMagic = []byte("KHSEAL01")

// Sealer returns a Sealer with f's store key and fingerprint key.
func (f *File) Sealer() *Sealer { return &Sealer{keys: f.keys, fpKey: f.fpKey} }

// Seal seals plain under label.
func (s *Sealer) Seal(label string, plain []byte) ([]byte, error) {
	aead, err := newAEAD(s.keys)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen, headerLen+len(plain)+aead.Overhead())
	copy(out, sealMagic)
	copy(out[8:], s.keys.keyID)
	if _, err := rand.Read(out[8+keyIDLen : headerLen]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[8+keyIDLen:headerLen], plain, s.aad(out, label)), nil
}

func (s *Sealer) aad(data []byte, label string) []byte {
	return append(append([]byte{}, data[:8+keyIDLen]...), label...)
}

// Open opens what Seal sealed under label. Its errors never hold the
// contents.
func (s *Sealer) Open(label string, data []byte) ([]byte, error) {
	aead, err := newAEAD(s.keys)
	if err != nil {
		return nil, err
	}
	if len(data) < headerLen+aead.Overhead() || string(data[:8]) != string(sealMagic) {
		return nil, errors.New("not a sealed keyhole value; refusing it")
	}
	if !hmac.Equal(data[8:8+keyIDLen], s.keys.keyID) {
		return nil, errWrongKey(s.keys.from)
	}
	plain, err := aead.Open(nil, data[8+keyIDLen:headerLen], data[headerLen:], s.aad(data, label))
	if err != nil {
		return nil, errors.New("the sealed value fails authentication: it is corrupt, was tampered with or moved; refusing it")
	}
	return plain, nil
}

// SealEntry checks e and seals it under its name, with Created and Updated
// as given (the caller keeps Created across replacements).
func (s *Sealer) SealEntry(e Entry) ([]byte, error) {
	if e.Origin == "" {
		e.Origin = OriginSet
	}
	if err := checkEntry(e); err != nil {
		return nil, fmt.Errorf("store: %s: %w", e.Name, err)
	}
	plain, err := json.Marshal(fileEntry{Name: e.Name, Value: e.Value.Reveal(), Origin: e.Origin, Owner: e.Owner,
		Created: e.Created, Updated: e.Updated, Expires: e.Expires, Policy: e.Policy})
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	return s.Seal("entry:"+e.Name, plain)
}

// OpenEntry opens what SealEntry sealed for name.
func (s *Sealer) OpenEntry(name string, data []byte) (Entry, error) {
	plain, err := s.Open("entry:"+name, data)
	if err != nil {
		return Entry{}, fmt.Errorf("store:%s: %w", name, err)
	}
	defer clear(plain)
	var fe fileEntry
	if err := json.Unmarshal(plain, &fe); err != nil || fe.Name != name {
		return Entry{}, fmt.Errorf("store:%s: the sealed entry is not a store entry; refusing it", name)
	}
	return Entry{Name: fe.Name, Value: secret.FromString(fe.Value), Origin: fe.Origin, Owner: fe.Owner,
		Created: fe.Created, Updated: fe.Updated, Expires: fe.Expires, Policy: fe.Policy}, nil
}

// Describe is e without its value, with its fingerprint.
func (s *Sealer) Describe(e Entry) Info {
	return Info{Name: e.Name, Origin: e.Origin, Owner: e.Owner, Created: e.Created, Updated: e.Updated,
		Expires: e.Expires, Policy: e.Policy, Fingerprint: fingerprint(s.fpKey, e.Value.Reveal())}
}

// Live reports whether e has not expired at now.
func (e Entry) Live(now time.Time) bool { return e.Expires.IsZero() || now.Before(e.Expires) }

// fingerprint is an HMAC-SHA-256 of value under key, shortened, in hex.
func fingerprint(key []byte, value string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil)[:8])
}
