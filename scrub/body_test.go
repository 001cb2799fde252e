package scrub

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"keyhole/secret"
)

const (
	alnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	hexLow = "0123456789abcdef"
	b64    = alnum + "+/"
	b64URL = alnum + "-_"
)

func randString(rng *rand.Rand, alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// realisticSecret returns a credential of the i-th of ten common shapes.
// Some contain characters that JSON or URLs escape, so that a set of ten
// compiles to about thirty patterns.
func realisticSecret(rng *rand.Rand, i int) string {
	switch i % 10 {
	case 0:
		return "sk_live_" + randString(rng, alnum, 24+rng.IntN(17))
	case 1:
		return "ghp_" + randString(rng, alnum, 36)
	case 2:
		return randString(rng, hexLow, 32)
	case 3:
		return "eyJhbGciOiJIUzI1NiJ9." + randString(rng, b64URL, 60) + "." + randString(rng, b64URL, 43)
	case 4:
		return randString(rng, b64, 40) + "/" + randString(rng, b64, 3) + "+"
	case 5:
		return randString(rng, alnum, 10) + `<&" /` + randString(rng, alnum, 10)
	case 6:
		return "xoxb-" + randString(rng, "0123456789", 12) + "-" + randString(rng, alnum, 24)
	case 7:
		return "postgres://app:" + randString(rng, alnum, 20) + "@db.internal/prod"
	case 8:
		return randString(rng, b64, 42) + "=="
	default:
		return "rk_test_" + randString(rng, alnum, 32)
	}
}

var words = strings.Fields(`the quick brown fox jumps over lazy dog payment intent
customer invoice subscription charge succeeded failed pending amount currency usd
eur description metadata created object event livemode false true null data list
has_more url status code message request id api version account balance`)

// benchBody returns about size bytes of JSON-lines text that looks like an
// API response, and nSecrets realistic secrets of which nMatches
// occurrences, in random forms, are planted in the text.
func benchBody(size, nSecrets, nMatches int) ([]byte, []Secret) {
	rng := rand.New(rand.NewPCG(1, 2))
	secrets := make([]Secret, nSecrets)
	var all [][]string
	for i := range secrets {
		v := realisticSecret(rng, i)
		secrets[i] = Secret{Name: fmt.Sprintf("SECRET_%d", i), Value: secret.FromString(v)}
		all = append(all, forms(v))
	}
	var b strings.Builder
	for b.Len() < size {
		fmt.Fprintf(&b, `{"id":"evt_%s","object":"event","created":%d,"data":{"amount":%d,"currency":"usd","description":"`,
			randString(rng, alnum, 24), 1700000000+rng.IntN(1e8), rng.IntN(1e6))
		for range 8 + rng.IntN(16) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteString(`"},"livemode":false,"url":"/v1/events/`)
		b.WriteString(randString(rng, hexLow, 16))
		b.WriteString("\"}\n")
	}
	body := []byte(b.String())[:size]
	if nSecrets == 0 {
		return body, secrets
	}
	for range nMatches {
		f := all[rng.IntN(len(all))]
		form := f[rng.IntN(len(f))]
		if len(form) >= len(body) {
			continue
		}
		copy(body[rng.IntN(len(body)-len(form)):], form)
	}
	return body, secrets
}
