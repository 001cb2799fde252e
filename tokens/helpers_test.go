package tokens

import (
	"strings"
	"testing"
	"time"
)

// now is the fixed time of every test.
var now = time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC)

// testKey returns a fixed key derived from seed, so that tokens are
// reproducible.
func testKey(seed byte) Key {
	k := Key{set: true}
	for i := range k.b {
		k.b[i] = seed + byte(i)
	}
	return k
}

// wide is a restriction with every kind of caveat.
var wide = Restriction{
	Secrets: []string{"STRIPE_LIVE", "GITHUB_TOKEN", "OPENAI_KEY"},
	Hosts:   []string{"api.stripe.com", "*.github.com"},
	Methods: []string{"GET", "post"},
	TTL:     15 * time.Minute,
}

func mustMint(t testing.TB, key Key, id string, r Restriction) string {
	t.Helper()
	tok, err := Mint(key, "billing", id, r, now)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

func mustAttenuate(t testing.TB, tok, id string, r Restriction) string {
	t.Helper()
	child, err := attenuate(tok, id, r, now)
	if err != nil {
		t.Fatalf("attenuate: %v", err)
	}
	return child
}

// forge builds a token from encoded caveats, chaining from start: a key's
// bytes to act as the minter, or a token's tag to act as anyone holding it.
func forge(start []byte, caveats ...[]byte) string {
	tag := start
	for _, c := range caveats {
		tag = chain(tag, c)
	}
	return encode(caveats, tag)
}

// extend appends caveats to tok as Attenuate would, without any checks.
func extend(t testing.TB, tok string, caveats ...[]byte) string {
	t.Helper()
	raw, err := decode(tok)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	tag := raw.tag
	for _, c := range caveats {
		tag = chain(tag, c)
	}
	return encode(append(raw.encodedCaveats(), caveats...), tag)
}

// checkNoToken fails if msg holds any 10-byte piece of tok's encoded part.
func checkNoToken(t testing.TB, msg, tok string) {
	t.Helper()
	body := strings.TrimPrefix(tok, Prefix)
	for i := 0; i+10 <= len(body); i++ {
		if strings.Contains(msg, body[i:i+10]) {
			t.Fatalf("message contains the token at offset %d", len(Prefix)+i)
		}
	}
}
