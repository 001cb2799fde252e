package tokens

import (
	"encoding/binary"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	key := testKey(1)
	tok := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, tok, "child-1", Restriction{Secrets: []string{"STRIPE_LIVE"}})
	parentRaw, err := decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	childRaw, err := decode(child)
	if err != nil {
		t.Fatal(err)
	}
	agent := appendCaveat(nil, kindAgent, appendList(nil, []string{"billing", "x"}))
	expires := appendCaveat(nil, kindExpires, binary.AppendUvarint(nil, uint64(now.Add(time.Hour).Unix())))
	payload, _ := b64.DecodeString(strings.TrimPrefix(tok, Prefix))
	ids := func(n int) [][]byte { // n id caveats
		out := make([][]byte, n)
		for i := range out {
			out[i] = appendCaveat(nil, kindID, []byte("i"))
		}
		return out
	}

	cases := []struct {
		name  string
		token string
		key   Key
		now   time.Time
		want  error // nil: verifies
	}{
		{name: "minted", token: tok, key: key, now: now},
		{name: "attenuated", token: child, key: key, now: now},
		{name: "just before expiry", token: tok, key: key, now: now.Add(15*time.Minute - time.Nanosecond)},
		{name: "at expiry", token: tok, key: key, now: now.Add(15 * time.Minute), want: ErrExpired},
		{name: "long expired", token: tok, key: key, now: now.Add(24 * time.Hour), want: ErrExpired},
		{name: "wrong key", token: tok, key: testKey(2), now: now, want: ErrInvalid},
		{name: "empty", token: "", key: key, now: now, want: ErrMalformed},
		{name: "prefix only", token: Prefix, key: key, now: now, want: ErrMalformed},
		{name: "static token", token: "s3cr3t-static-token", key: key, now: now, want: ErrMalformed},
		{name: "other version", token: "kh2_" + strings.TrimPrefix(tok, Prefix), key: key, now: now, want: ErrMalformed},
		{name: "padding", token: tok + "=", key: key, now: now, want: ErrMalformed},
		{name: "newline inside", token: tok[:20] + "\n" + tok[20:], key: key, now: now, want: ErrMalformed},
		{name: "oversize", token: tok + strings.Repeat("A", MaxTokenLen), key: key, now: now, want: ErrMalformed},
		{name: "trailing bytes", token: Prefix + b64.EncodeToString(append(slices.Clone(payload), 0)), key: key, now: now, want: ErrInvalid},
		{name: "non-minimal length", token: forge(key.b[:], append([]byte{byte(kindAgent), 0x80 | byte(len(agent)-2), 0}, agent[2:]...), expires), key: key, now: now, want: ErrMalformed},
		{name: "most caveats", token: extend(t, tok, ids(MaxCaveats-len(parentRaw.caveats))...), key: key, now: now},
		{name: "too many caveats", token: extend(t, tok, ids(MaxCaveats-len(parentRaw.caveats)+1)...), key: key, now: now, want: ErrMalformed},
		{name: "unknown caveat", token: extend(t, tok, appendCaveat(nil, 99, []byte("x"))), key: key, now: now, want: ErrInvalid},
		{name: "second agent caveat", token: extend(t, tok, appendCaveat(nil, kindAgent, appendList(nil, []string{"admin", "y"}))), key: key, now: now, want: ErrInvalid},
		{name: "empty secrets list", token: extend(t, tok, appendCaveat(nil, kindSecrets, nil)), key: key, now: now, want: ErrInvalid},
		{name: "bad secret name", token: extend(t, tok, appendCaveat(nil, kindSecrets, appendList(nil, []string{"A B"}))), key: key, now: now, want: ErrInvalid},
		{name: "bad host", token: extend(t, tok, appendCaveat(nil, kindHosts, appendList(nil, []string{"*x*"}))), key: key, now: now, want: ErrInvalid},
		{name: "bad expiry", token: extend(t, tok, appendCaveat(nil, kindExpires, []byte{0})), key: key, now: now, want: ErrInvalid},
		{name: "first caveat not agent", token: forge(key.b[:], expires, agent), key: key, now: now, want: ErrInvalid},
		{name: "no expiry", token: forge(key.b[:], agent), key: key, now: now, want: ErrInvalid},
		{name: "last caveat dropped, child tag kept", token: encode(childRaw.encodedCaveats()[:len(childRaw.caveats)-1], childRaw.tag), key: key, now: now, want: ErrInvalid},
		{name: "last caveat dropped, parent tag", token: encode(childRaw.encodedCaveats()[:len(childRaw.caveats)-1], parentRaw.tag), key: key, now: now, want: ErrInvalid},
		{name: "child caveats, parent tag", token: encode(childRaw.encodedCaveats(), parentRaw.tag), key: key, now: now, want: ErrInvalid},
		{name: "parent caveats, child tag", token: encode(parentRaw.encodedCaveats(), childRaw.tag), key: key, now: now, want: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Verify(tc.key, tc.token, tc.now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if g.Agent != "billing" {
					t.Fatalf("got agent %q, want billing", g.Agent)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if g != nil {
				t.Fatalf("got grant %s with an error, want nil", g.ID)
			}
			checkNoToken(t, err.Error(), tc.token)
		})
	}
}

func TestVerifyZeroKey(t *testing.T) {
	tok := mustMint(t, testKey(1), "a", wide)
	if _, err := Verify(Key{}, tok, now); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("got error %v, want a zero-key error", err)
	}
}

// TestEverySingleByteEdit checks that changing any one byte of a valid token
// to any other byte makes it fail.
func TestEverySingleByteEdit(t *testing.T) {
	key := testKey(1)
	tok := mustMint(t, key, "task-1", wide)
	tokens := map[string]string{
		"minted":     tok,
		"attenuated": mustAttenuate(t, tok, "c1", Restriction{Hosts: []string{"api.stripe.com"}}),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			tried := 0
			for i := range len(tok) {
				for c := range 256 {
					if byte(c) == tok[i] {
						continue
					}
					edited := tok[:i] + string([]byte{byte(c)}) + tok[i+1:]
					tried++
					if _, err := Verify(key, edited, now); err == nil {
						t.Fatalf("byte %d changed to %#x: got a valid token, want an error", i, c)
					}
				}
			}
			t.Logf("%d edits of a %d-byte token refused", tried, len(tok))
		})
	}
}

func TestTruncated(t *testing.T) {
	key := testKey(1)
	tok := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, tok, "c1", Restriction{Methods: []string{"GET"}})
	for name, tok := range map[string]string{"minted": tok, "attenuated": child} {
		t.Run(name, func(t *testing.T) {
			for n := range len(tok) {
				if _, err := Verify(key, tok[:n], now); err == nil {
					t.Fatalf("prefix of %d bytes: got a valid token, want an error", n)
				}
				if _, err := Verify(key, tok[n:], now); err == nil && n > 0 {
					t.Fatalf("suffix from byte %d: got a valid token, want an error", n)
				}
			}
		})
	}
}

func TestMintErrors(t *testing.T) {
	key := testKey(1)
	manyHosts := make([]string, 300)
	for i := range manyHosts {
		manyHosts[i] = strings.Repeat("h", 20) + string(rune('a'+i%26)) + ".example" + strings.Repeat("x", i%7) + ".com"
	}
	cases := []struct {
		name  string
		key   Key
		agent string
		id    string
		r     Restriction
		want  string // in the error
	}{
		{name: "zero key", agent: "a", r: Restriction{TTL: time.Minute}, want: "zero key"},
		{name: "empty agent", key: key, r: Restriction{TTL: time.Minute}, want: "agent name"},
		{name: "colon in agent", key: key, agent: "a:b", r: Restriction{TTL: time.Minute}, want: "agent name"},
		{name: "no ttl", key: key, agent: "a", want: "ttl must be positive"},
		{name: "negative ttl", key: key, agent: "a", r: Restriction{TTL: -time.Minute}, want: "ttl must be positive"},
		{name: "id with space", key: key, agent: "a", id: "a b", r: Restriction{TTL: time.Minute}, want: "not allowed"},
		{name: "id like a flag", key: key, agent: "a", id: "-rf", r: Restriction{TTL: time.Minute}, want: "must start with"},
		{name: "id like a token", key: key, agent: "a", id: "kh1_x", r: Restriction{TTL: time.Minute}, want: "must start with"},
		{name: "id too long", key: key, agent: "a", id: strings.Repeat("i", 65), r: Restriction{TTL: time.Minute}, want: "1 to 64"},
		{name: "empty secrets", key: key, agent: "a", r: Restriction{Secrets: []string{}, TTL: time.Minute}, want: "secrets: empty list"},
		{name: "bad secret", key: key, agent: "a", r: Restriction{Secrets: []string{"OK", "1BAD"}, TTL: time.Minute}, want: "secrets[1]"},
		{name: "bad host", key: key, agent: "a", r: Restriction{Hosts: []string{"a*.example.com"}, TTL: time.Minute}, want: "hosts[0]"},
		{name: "bad method", key: key, agent: "a", r: Restriction{Methods: []string{"GET POST"}, TTL: time.Minute}, want: "methods[0]"},
		{name: "too long", key: key, agent: "a", r: Restriction{Hosts: manyHosts, TTL: time.Minute}, want: "longer than 4096"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Mint(tc.key, tc.agent, tc.id, tc.r, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got token of %d bytes and error %v, want an error containing %q", len(tok), err, tc.want)
			}
		})
	}
}

func TestTokenForm(t *testing.T) {
	key := testKey(1)
	tok := mustMint(t, key, "", wide)
	t.Logf("a token with 3 secrets, 2 hosts, 2 methods and a ttl is %d bytes", len(tok))
	if len(tok) >= 300 {
		t.Errorf("got %d bytes, want fewer than 300", len(tok))
	}
	child := mustAttenuate(t, tok, "c1", Restriction{Secrets: []string{"STRIPE_LIVE"}, TTL: time.Minute})
	for _, tok := range []string{tok, child} {
		if !LooksLikeToken(tok) {
			t.Errorf("LooksLikeToken: got false, want true")
		}
		u, err := url.Parse("http://billing:" + tok + "@127.0.0.1:8080/")
		if err != nil {
			t.Fatalf("url.Parse: %v", err)
		}
		if pw, _ := u.User.Password(); pw != tok {
			t.Errorf("password from URL differs from the token")
		}
		if got := url.UserPassword("billing", tok).String(); got != "billing:"+tok {
			t.Errorf("userinfo was escaped, want it verbatim")
		}
	}
}

func TestLooksLikeToken(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{{"kh1_abc", true}, {"kh1_", true}, {"KH1_abc", false}, {"static-token", false}, {"", false}}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			if got := LooksLikeToken(tc.in); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMintRandomIDs(t *testing.T) {
	key := testKey(1)
	seen := map[string]bool{}
	for range 100 {
		g, err := Verify(key, mustMint(t, key, "", wide), now)
		if err != nil {
			t.Fatal(err)
		}
		if seen[g.ID] || checkID(g.ID) != nil || len(g.ID) != 16 {
			t.Fatalf("got id %q (seen before: %v), want a fresh valid 16-byte id", g.ID, seen[g.ID])
		}
		seen[g.ID] = true
	}
}

func TestInspect(t *testing.T) {
	key := testKey(1)
	tok := mustMint(t, key, "task-1", wide)
	child := mustAttenuate(t, tok, "c1", Restriction{Secrets: []string{"STRIPE_LIVE"}, TTL: time.Minute})
	info, err := Inspect(child)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	var got []string
	for _, c := range info.Caveats {
		got = append(got, c.String())
	}
	want := []string{
		"agent=billing,task-1",
		"expires=2026-11-26T10:45:00Z",
		"secrets=GITHUB_TOKEN,OPENAI_KEY,STRIPE_LIVE",
		"hosts=*.github.com,api.stripe.com",
		"methods=GET,POST",
		"id=c1",
		"expires=2026-11-26T10:31:00Z",
		"secrets=STRIPE_LIVE",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got caveats %q, want %q", got, want)
	}
	if info.Agent != "billing" || info.ID != "c1" || !slices.Equal(info.IDs, []string{"task-1", "c1"}) || !info.Expires.Equal(now.Add(time.Minute)) {
		t.Errorf("got %+v, want agent billing, id c1, ids [task-1 c1], expiry %v", info, now.Add(time.Minute))
	}
	// Inspect does not need the key and does not care about expiry or tag.
	forged := encode(mustRaw(t, child).encodedCaveats(), make([]byte, tagSize))
	if _, err := Inspect(forged); err != nil {
		t.Errorf("Inspect of a token with a bad tag: got %v, want no error", err)
	}
	if _, err := Inspect("garbage"); !errors.Is(err, ErrMalformed) {
		t.Errorf("got %v, want %v", err, ErrMalformed)
	}
}

func mustRaw(t *testing.T, tok string) rawToken {
	t.Helper()
	raw, err := decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestTokenNeverOutlivesTTL: the expiry is whole seconds, rounded down, so
// a token minted at any instant is expired by mint time + TTL.
func TestTokenNeverOutlivesTTL(t *testing.T) {
	key := testKey(1)
	for _, frac := range []time.Duration{0, time.Nanosecond, 500 * time.Millisecond, time.Second - time.Nanosecond} {
		for _, ttl := range []time.Duration{time.Second, 2 * time.Second, 2*time.Second + 999*time.Millisecond, time.Hour} {
			minted := now.Add(frac)
			tok, err := Mint(key, "billing", "t1", Restriction{TTL: ttl}, minted)
			if err != nil {
				t.Fatalf("Mint at +%v with ttl %v: %v", frac, ttl, err)
			}
			if _, err := Verify(key, tok, minted.Add(ttl)); !errors.Is(err, ErrExpired) {
				t.Errorf("minted at +%v with ttl %v: at mint+ttl got %v, want ErrExpired", frac, ttl, err)
			}
			g, err := Verify(key, tok, minted)
			if err != nil {
				t.Fatalf("minted at +%v with ttl %v: at mint got %v", frac, ttl, err)
			}
			if life := g.Expires.Sub(minted); life > ttl || life <= ttl-time.Second {
				t.Errorf("minted at +%v with ttl %v: lives %v, want in (ttl-1s, ttl]", frac, ttl, life)
			}
			if _, err := Verify(key, tok, g.Expires.Add(-time.Nanosecond)); err != nil {
				t.Errorf("minted at +%v with ttl %v: just before expiry got %v", frac, ttl, err)
			}
		}
	}
	if _, err := Mint(key, "billing", "t1", Restriction{TTL: 999 * time.Millisecond}, now); err == nil || !strings.Contains(err.Error(), "shorter than 1s") {
		t.Errorf("ttl 999ms: got %v, want an error saying it is shorter than 1s", err)
	}
}
