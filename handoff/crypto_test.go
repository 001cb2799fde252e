package handoff

import (
	"errors"
	"strings"
	"testing"

	"keyhole/secret"
)

const testValue = "sk_live_handoff_TEST_0123456789"

func TestShareRoundTrip(t *testing.T) {
	id := NewID()
	ct, check, key, err := SealShare(id, secret.FromString(testValue))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), testValue) {
		t.Fatal("the ciphertext holds the value")
	}
	k, err := Decode(key.Reveal(), KeyBytes)
	if err != nil {
		t.Fatal(err)
	}
	if string(KeyCheck(k)) != string(check) {
		t.Error("the key check does not match the key")
	}
	got, err := OpenShare(id, key.Reveal(), ct)
	if err != nil || !got.Equal(testValue) {
		t.Fatalf("OpenShare: %v (value equal: %v)", err, got.Equal(testValue))
	}
	bad := []struct {
		name, id, key string
		ct            []byte
	}{
		{"other id", NewID(), key.Reveal(), ct},
		{"flipped ciphertext", id, key.Reveal(), flip(ct, len(ct)-1)},
		{"flipped nonce", id, key.Reveal(), flip(ct, 0)},
		{"short", id, key.Reveal(), ct[:10]},
		{"other key", id, Encode(random(KeyBytes)), ct},
		{"short key", id, key.Reveal()[:20], ct},
		{"not base64", id, "!!" + key.Reveal()[2:], ct},
	}
	for _, tc := range bad {
		if _, err := OpenShare(tc.id, tc.key, tc.ct); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: got %v, want ErrDamaged", tc.name, err)
		}
	}
	link := ShareLink("https://k.example:8443/", id, key)
	if link.Reveal() != "https://k.example:8443/s/"+id+"#"+key.Reveal() || strings.Contains(link.String(), id) {
		t.Errorf("link is not BASE/s/ID#KEY or prints itself")
	}
}

func TestIntakeRoundTrip(t *testing.T) {
	id := NewID()
	priv, pub, err := NewIntakeKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key is %d bytes, want an uncompressed P-256 point", len(pub))
	}
	a, err := SealAnswer(pub, id, secret.FromString(testValue))
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenAnswer(priv, id, a)
	if err != nil || !got.Equal(testValue) {
		t.Fatalf("OpenAnswer: %v", err)
	}
	otherPriv, _, _ := NewIntakeKey()
	bad := map[string]func() ([]byte, string, AnswerRequest){
		"other id":  func() ([]byte, string, AnswerRequest) { return priv, NewID(), a },
		"other key": func() ([]byte, string, AnswerRequest) { return otherPriv, id, a },
		"flipped ct": func() ([]byte, string, AnswerRequest) {
			b := a
			b.Ciphertext = Encode(flip(mustDecode(t, a.Ciphertext), 0))
			return priv, id, b
		},
		"bad point": func() ([]byte, string, AnswerRequest) {
			b := a
			b.EphemeralKey = Encode(flip(mustDecode(t, a.EphemeralKey), 10))
			return priv, id, b
		},
		"no nonce": func() ([]byte, string, AnswerRequest) { b := a; b.Nonce = ""; return priv, id, b },
	}
	for name, f := range bad {
		p, i, req := f()
		if _, err := OpenAnswer(p, i, req); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	capability, hash := NewCapability()
	if !CheckCapability(capability.Reveal(), hash) || CheckCapability(Encode(random(CapabilityBytes)), hash) || CheckCapability("", hash) {
		t.Error("CheckCapability accepts the wrong capability or refuses the right one")
	}
	link := IntakeLink("https://k.example", id, capability, pub).Reveal()
	if link != "https://k.example/i/"+id+"#"+capability.Reveal()+"."+Fingerprint(pub) {
		t.Error("intake link is not BASE/i/ID#CAPABILITY.FINGERPRINT")
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func mustDecode(t *testing.T, s string) []byte {
	b, err := Decode(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// One id in 64 would begin with "-" if NewID did not prevent it; 10,000 ids
// catch a regression all but surely.
func TestNewIDNeverLooksLikeAFlag(t *testing.T) {
	for range 10000 {
		id := NewID()
		if strings.HasPrefix(id, "-") {
			t.Fatalf("NewID() = %q begins with -, which keyhole share revoke would parse as a flag", id)
		}
		if b, err := Decode(id, IDBytes); err != nil || len(b) != IDBytes {
			t.Fatalf("NewID() = %q does not decode to %d bytes: %v", id, IDBytes, err)
		}
	}
}
