package handoff

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"keyhole/secret"
)

// The cryptography of shares and intakes. The browser's half is the
// pages' JavaScript (WebCrypto); every constant here is also spelled there
// and the browser tests hold the two together.
//
// Share: keyhole seals the value with AES-256-GCM under a fresh random key,
// the share's id as associated data; the link's fragment carries the key,
// keyhole keeps nonce || ciphertext and KeyCheck(key), never the key.
//
// Intake: keyhole makes an ECDH P-256 key pair per request; the page makes
// an ephemeral pair, derives the shared secret (the x-coordinate), expands
// it with HKDF-SHA-256 (no salt, info IntakeInfo) into an AES-256-GCM key
// and seals the value with the intake's id as associated data. The link's
// fragment carries the public key's fingerprint, which the page checks
// against the key /i/ID/meta serves before it encrypts.

// Labels bound into the derivations.
const (
	// KeyCheckLabel prefixes the key in KeyCheck.
	KeyCheckLabel = "keyhole share key check v1"
	// IntakeInfo is the HKDF info of the intake's AES key.
	IntakeInfo = "keyhole intake v1"
)

const nonceSize = 12

// b64 is how every binary value is spelled in links and JSON.
var b64 = base64.RawURLEncoding

// Encode spells b as in links and JSON (base64url without padding).
func Encode(b []byte) string { return b64.EncodeToString(b) }

// Decode reads what Encode wrote; want > 0 also checks the length.
func Decode(s string, want int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	if want > 0 && len(b) != want {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), want)
	}
	return b, nil
}

// NewID returns a fresh random id for a share or an intake. It never begins
// with "-": operators pass ids to "keyhole share revoke ID", whose flag
// parser would take one that did for a flag.
func NewID() string {
	for {
		if id := Encode(random(IDBytes)); id[0] != '-' {
			return id
		}
	}
}

// NewCapability returns a fresh capability for an intake link and the hash
// keyhole keeps of it.
func NewCapability() (capability secret.Value, hash []byte) {
	c := random(CapabilityBytes)
	h := sha256.Sum256(c)
	return secret.FromString(Encode(c)), h[:]
}

// CheckCapability reports, in constant time, whether capability (as in the
// link) hashes to hash.
func CheckCapability(capability string, hash []byte) bool {
	c, err := Decode(capability, CapabilityBytes)
	if err != nil {
		return false
	}
	h := sha256.Sum256(c)
	return subtle.ConstantTimeCompare(h[:], hash) == 1
}

// SealShare encrypts value for the share id under a fresh key. It returns
// the ciphertext keyhole keeps, the key check it keeps, and the key, which
// belongs in the link's fragment only.
func SealShare(id string, value secret.Value) (ciphertext, keyCheck []byte, key secret.Value, err error) {
	k := random(KeyBytes)
	aead, err := newGCM(k)
	if err != nil {
		return nil, nil, secret.Value{}, err
	}
	nonce := random(nonceSize)
	ciphertext = aead.Seal(nonce, nonce, []byte(value.Reveal()), []byte(id))
	return ciphertext, KeyCheck(k), secret.FromString(Encode(k)), nil
}

// KeyCheck is SHA-256 of KeyCheckLabel followed by the key: it tells a
// damaged fragment from the right key and says nothing about the key.
func KeyCheck(key []byte) []byte {
	h := sha256.New()
	h.Write([]byte(KeyCheckLabel))
	h.Write(key)
	return h.Sum(nil)
}

// OpenShare decrypts a share's ciphertext with the key from its link, as
// the page does. It is the Go twin of the page, for tests.
func OpenShare(id, key string, ciphertext []byte) (secret.Value, error) {
	k, err := Decode(key, KeyBytes)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	return openGCM(k, ciphertext, id)
}

// ShareLink is the link of a share: base/s/ID#KEY.
func ShareLink(base, id string, key secret.Value) secret.Value {
	return secret.FromString(strings.TrimRight(base, "/") + SharePath + id + "#" + key.Reveal())
}

// IntakeLink is the link of an intake: base/i/ID#CAPABILITY.FINGERPRINT.
func IntakeLink(base, id string, capability secret.Value, publicKey []byte) secret.Value {
	return secret.FromString(strings.TrimRight(base, "/") + IntakePath + id + "#" + capability.Reveal() + "." + Fingerprint(publicKey))
}

// NewIntakeKey makes an intake's key pair: the private scalar and the
// uncompressed public point.
func NewIntakeKey() (private, public []byte, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	return k.Bytes(), k.PublicKey().Bytes(), nil
}

// Fingerprint is the base64url SHA-256 of an intake's public key, as the
// link's fragment carries it.
func Fingerprint(publicKey []byte) string {
	h := sha256.Sum256(publicKey)
	return Encode(h[:])
}

// OpenAnswer decrypts an intake answer with the intake's private key.
func OpenAnswer(private []byte, id string, a AnswerRequest) (secret.Value, error) {
	priv, err := ecdh.P256().NewPrivateKey(private)
	if err != nil {
		return secret.Value{}, err
	}
	eph, err := Decode(a.EphemeralKey, 65)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	pub, err := ecdh.P256().NewPublicKey(eph)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	nonce, err := Decode(a.Nonce, nonceSize)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	ct, err := Decode(a.Ciphertext, 0)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	k, err := intakeKey(priv, pub)
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	return openGCM(k, append(nonce, ct...), id)
}

// SealAnswer encrypts value to an intake's public key, as the page does.
// It is the Go twin of the page, for tests; hosts and capability are
// copied into the request.
func SealAnswer(public []byte, id string, value secret.Value) (AnswerRequest, error) {
	pub, err := ecdh.P256().NewPublicKey(public)
	if err != nil {
		return AnswerRequest{}, err
	}
	eph, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return AnswerRequest{}, err
	}
	k, err := intakeKey(eph, pub)
	if err != nil {
		return AnswerRequest{}, err
	}
	aead, err := newGCM(k)
	if err != nil {
		return AnswerRequest{}, err
	}
	nonce := random(nonceSize)
	ct := aead.Seal(nil, nonce, []byte(value.Reveal()), []byte(id))
	return AnswerRequest{EphemeralKey: Encode(eph.PublicKey().Bytes()), Nonce: Encode(nonce), Ciphertext: Encode(ct)}, nil
}

func intakeKey(priv *ecdh.PrivateKey, pub *ecdh.PublicKey) ([]byte, error) {
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, shared, nil, IntakeInfo, 32)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// openGCM opens nonce || sealed under key with id as associated data.
func openGCM(key, ciphertext []byte, id string) (secret.Value, error) {
	aead, err := newGCM(key)
	if err != nil || len(ciphertext) < nonceSize+aead.Overhead() {
		return secret.Value{}, ErrDamaged
	}
	plain, err := aead.Open(nil, ciphertext[:nonceSize], ciphertext[nonceSize:], []byte(id))
	if err != nil {
		return secret.Value{}, ErrDamaged
	}
	return secret.New(plain), nil
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}
