package pgroles

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"keyhole/rules"
	"keyhole/secret"
)

// TestScramVerifier checks the verifier against an independent derivation
// from its own salt: a server holding it accepts the password.
func TestScramVerifier(t *testing.T) {
	pw := secret.New([]byte("correct horse battery staple"))
	v, err := scramVerifier(pw)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
	if !ok || !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") {
		t.Fatalf("malformed verifier")
	}
	salt, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(head, "4096:"))
	storedB64, serverB64, _ := strings.Cut(keys, ":")
	salted, _ := pbkdf2.Key(sha256.New, pw.Reveal(), salt, 4096, 32)
	mac := hmac.New(sha256.New, salted)
	mac.Write([]byte("Client Key"))
	stored := sha256.Sum256(mac.Sum(nil))
	if base64.StdEncoding.EncodeToString(stored[:]) != storedB64 {
		t.Error("StoredKey does not match")
	}
	mac = hmac.New(sha256.New, salted)
	mac.Write([]byte("Server Key"))
	if base64.StdEncoding.EncodeToString(mac.Sum(nil)) != serverB64 {
		t.Error("ServerKey does not match")
	}
	if strings.Contains(v, pw.Reveal()) {
		t.Error("the verifier holds the password")
	}
}

func TestNameAndGrant(t *testing.T) {
	if got, want := Name("Data.Analyst-1", "0a1b2c3d"), "keyhole_tmp_data_analyst_1_0a1b2c3d"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	g, err := rules.ParseGrant("select, insert ON public.users, orders")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := grantSQL(g, "r"), `GRANT SELECT, INSERT ON TABLE "public"."users", "orders" TO "r"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := quoteIdent(`a"b`); got != `"a""b"` {
		t.Errorf("quoteIdent: got %s", got)
	}
}
