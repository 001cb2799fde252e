package tokens

import (
	"strings"
	"testing"
	"time"
)

// fuzzTokens mints the fixed set of valid tokens that FuzzVerify mutates.
// Ids are fixed so that the tokens, and the seed corpus in
// testdata/fuzz/FuzzVerify, are reproducible.
func fuzzTokens(t testing.TB, key Key) []string {
	root := mustMint(t, key, "root-1", wide)
	kid := mustAttenuate(t, root, "kid-1", Restriction{Secrets: []string{"STRIPE_LIVE"}, TTL: time.Minute})
	ci, err := Mint(key, "ci", "root-3", Restriction{Hosts: []string{"[::1]:8443", "127.0.0.1:8080"}, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		root,
		mustMint(t, key, "root-2", Restriction{TTL: time.Hour}),
		kid,
		mustAttenuate(t, kid, "kid-2", Restriction{Hosts: []string{"api.stripe.com"}, Methods: []string{"GET"}}),
		ci,
	}
}

// mutate edits tok as op says: bit 0 picks the level (0: the token's text,
// 1: its decoded payload, re-encoded after the edit) and the next bits the
// edit (overwrite with data, insert data, truncate, delete) at pos.
func mutate(tok string, op uint8, pos uint16, data []byte) string {
	b := []byte(tok)
	if op&1 == 1 {
		b, _ = b64.DecodeString(strings.TrimPrefix(tok, Prefix))
	}
	at := int(pos) % (len(b) + 1)
	switch (op >> 1) % 4 {
	case 0:
		b = append(b[:at:at], append(data, b[min(at+len(data), len(b)):]...)...)
	case 1:
		b = append(b[:at:at], append(data, b[at:]...)...)
	case 2:
		b = b[:at]
	case 3:
		b = append(b[:at:at], b[min(at+1+len(data), len(b)):]...)
	}
	if op&1 == 1 {
		return Prefix + b64.EncodeToString(b)
	}
	return string(b)
}

// FuzzVerify checks that no string verifies unless it is one of the tokens
// the test minted: neither arbitrary input (s) nor edits of a minted token
// (base, op, pos, data; see mutate). It also checks that an attenuation
// verifies only when its parent does, and that errors never quote the input.
func FuzzVerify(f *testing.F) {
	key := testKey(1)
	minted := fuzzTokens(f, key)
	valid := map[string]bool{}
	for i, tok := range minted {
		valid[tok] = true
		f.Add(tok, uint8(i), uint8(0), uint16(0), []byte(nil))
	}
	f.Add("", uint8(0), uint8(1), uint16(7), []byte{0xff})
	f.Add(Prefix, uint8(2), uint8(4), uint16(40), []byte(nil))
	f.Add("static-token", uint8(3), uint8(3), uint16(9), []byte{byte(kindAgent)})
	f.Fuzz(func(t *testing.T, s string, base, op uint8, pos uint16, data []byte) {
		checkFuzzed(t, key, s, valid)
		checkFuzzed(t, key, mutate(minted[int(base)%len(minted)], op, pos, data), valid)
	})
}

func checkFuzzed(t *testing.T, key Key, s string, valid map[string]bool) {
	g, err := Verify(key, s, now)
	if err == nil && !valid[s] {
		t.Fatalf("a %d-byte string the test did not mint verified as token %s of %s", len(s), g.ID, g.Agent)
	}
	if err != nil && LooksLikeToken(s) && len(s) >= 24 && strings.Contains(err.Error(), s[len(Prefix):]) {
		t.Fatal("the error quotes the input")
	}
	_, _ = Inspect(s)
	child, err := attenuate(s, "fuzz-kid", Restriction{Methods: []string{"GET"}}, now)
	if err == nil && !valid[s] {
		if _, err := Verify(key, child, now); err == nil {
			t.Fatalf("an attenuation of a %d-byte string the test did not mint verified", len(s))
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := testKey(1)
	root := mustMint(b, key, "bench", wide)
	tokens := []struct {
		name  string
		token string
	}{
		{"minted", root},
		{"attenuated-3", mustAttenuate(b, mustAttenuate(b, mustAttenuate(b, root, "c1",
			Restriction{Secrets: []string{"STRIPE_LIVE"}}), "c2",
			Restriction{Methods: []string{"GET"}, TTL: time.Minute}), "c3",
			Restriction{Hosts: []string{"api.stripe.com"}})},
	}
	// The worst a client can send: as many caveats as decode accepts, with
	// a tag that does not match.
	hostile, err := decode(tokens[1].token)
	if err != nil {
		b.Fatal(err)
	}
	caveats := hostile.encodedCaveats()
	for len(caveats) < MaxCaveats {
		caveats = append(caveats, appendCaveat(nil, kindID, []byte("i")))
	}
	tokens = append(tokens, struct {
		name  string
		token string
	}{"hostile-max-caveats", encode(caveats, hostile.tag)})
	for _, tc := range tokens {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.token)))
			for b.Loop() {
				if _, err := Verify(key, tc.token, now); err != nil && tc.name != "hostile-max-caveats" {
					b.Fatal(err)
				}
			}
		})
	}
}
