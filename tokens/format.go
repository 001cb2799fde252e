package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// The wire format. A token is Prefix followed by the unpadded base64url
// encoding of
//
//	payload = caveat... tag
//	caveat  = kind (1 byte) || uvarint(len(body)) || body
//	tag     = 32 bytes
//
// where tag = HMAC-SHA256 chain over the encoded caveats: t0 = HMAC(key,
// caveat0), ti = HMAC(t(i-1), caveati). Lists in a body are uvarint-length
// prefixed strings. Every uvarint must be minimally encoded, so that one set
// of caveats has exactly one encoding.

// Prefix starts every minted token. It names the format's version.
const Prefix = "kh1_"

// MaxTokenLen is the longest token, in bytes, that Verify accepts and that
// Mint and Attenuate produce.
const MaxTokenLen = 4096

// MaxCaveats is the most caveats a token may hold: a mint adds at most five
// and each attenuation at most five, so this allows a dozen generations.
// The bound keeps Verify's work on a hostile token small.
const MaxCaveats = 64

const tagSize = sha256.Size

// kind is a caveat's type. The values are part of the wire format: never
// renumber them.
type kind byte

const (
	kindAgent   kind = 1 // the agent's name and the root id; first, and only there
	kindID      kind = 2 // an attenuation's own id
	kindExpires kind = 3 // unix seconds
	kindSecrets kind = 4 // secret names
	kindHosts   kind = 5 // host patterns
	kindMethods kind = 6 // upper-case HTTP methods
)

// String returns the kind's name as Inspect shows it.
func (k kind) String() string {
	switch k {
	case kindAgent:
		return "agent"
	case kindID:
		return "id"
	case kindExpires:
		return "expires"
	case kindSecrets:
		return "secrets"
	case kindHosts:
		return "hosts"
	case kindMethods:
		return "methods"
	}
	return fmt.Sprintf("unknown(%d)", byte(k))
}

// rawCaveat is one caveat as it appears in a token.
type rawCaveat struct {
	kind kind
	body []byte
	enc  []byte // the whole encoded caveat, which the tag chain covers
}

// rawToken is a token split into its caveats and tag, not yet interpreted.
type rawToken struct {
	caveats []rawCaveat
	tag     []byte
}

// b64 is the token's encoding. Strict decoding refuses stray bits in the last
// character, so that each payload has exactly one text form. It is never
// modified.
var b64 = base64.RawURLEncoding.Strict()

// decode splits a token into caveats and tag. It checks only the framing;
// errors wrap ErrMalformed and never quote the token.
func decode(token string) (rawToken, error) {
	if len(token) > MaxTokenLen {
		return rawToken{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLen)
	}
	enc, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return rawToken{}, fmt.Errorf("%w: does not start with %q", ErrMalformed, Prefix)
	}
	// The decoder skips newlines; the token alphabet has none.
	for i := 0; i < len(enc); i++ {
		if !isTokenChar(enc[i]) {
			return rawToken{}, fmt.Errorf("%w: byte %d is not base64url", ErrMalformed, len(Prefix)+i)
		}
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return rawToken{}, fmt.Errorf("%w: bad base64url", ErrMalformed)
	}
	if len(payload) < tagSize {
		return rawToken{}, fmt.Errorf("%w: too short", ErrMalformed)
	}
	t := rawToken{caveats: make([]rawCaveat, 0, 8)}
	rest := payload[:len(payload)-tagSize]
	t.tag = payload[len(payload)-tagSize:]
	for len(rest) > 0 {
		if len(rest) < 2 {
			return rawToken{}, fmt.Errorf("%w: caveat %d is truncated", ErrMalformed, len(t.caveats))
		}
		n, w, err := readUvarint(rest[1:])
		if err != nil || n > uint64(len(rest)-1-w) {
			return rawToken{}, fmt.Errorf("%w: caveat %d has a bad length", ErrMalformed, len(t.caveats))
		}
		if len(t.caveats) == MaxCaveats {
			return rawToken{}, fmt.Errorf("%w: more than %d caveats", ErrMalformed, MaxCaveats)
		}
		end := 1 + w + int(n)
		t.caveats = append(t.caveats, rawCaveat{kind: kind(rest[0]), body: rest[1+w : end], enc: rest[:end]})
		rest = rest[end:]
	}
	if len(t.caveats) == 0 {
		return rawToken{}, fmt.Errorf("%w: no caveats", ErrMalformed)
	}
	return t, nil
}

// encode returns the token text of caveats and tag.
func encode(caveats [][]byte, tag []byte) string {
	var payload []byte
	for _, c := range caveats {
		payload = append(payload, c...)
	}
	payload = append(payload, tag...)
	return Prefix + b64.EncodeToString(payload)
}

// encodedCaveats returns the encoded caveats of t.
func (t rawToken) encodedCaveats() [][]byte {
	out := make([][]byte, len(t.caveats))
	for i, c := range t.caveats {
		out[i] = c.enc
	}
	return out
}

// chain extends the tag chain by one caveat: HMAC-SHA256(tag, caveat). The
// first link uses the Key as tag.
func chain(tag, caveat []byte) []byte {
	m := hmac.New(sha256.New, tag)
	m.Write(caveat)
	return m.Sum(nil)
}

// appendCaveat appends the encoding of one caveat to dst.
func appendCaveat(dst []byte, k kind, body []byte) []byte {
	dst = append(dst, byte(k))
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// appendList appends length-prefixed strings to dst.
func appendList(dst []byte, items []string) []byte {
	for _, s := range items {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// readList splits a body written by appendList.
func readList(body []byte) ([]string, error) {
	var out []string
	for len(body) > 0 {
		n, w, err := readUvarint(body)
		if err != nil || n > uint64(len(body)-w) {
			return nil, fmt.Errorf("item %d has a bad length", len(out))
		}
		out = append(out, string(body[w:w+int(n)]))
		body = body[w+int(n):]
	}
	return out, nil
}

// readUvarint reads a minimally encoded uvarint and returns it and its width.
func readUvarint(b []byte) (uint64, int, error) {
	v, w := binary.Uvarint(b)
	if w <= 0 || w != uvarintLen(v) {
		return 0, 0, fmt.Errorf("bad uvarint")
	}
	return v, w, nil
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// isTokenChar reports whether c is in the base64url alphabet, which is also
// what a URL's userinfo carries without escaping.
func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
