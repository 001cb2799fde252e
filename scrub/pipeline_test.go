package scrub

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"keyhole/secret"
)

// TestReaderSplitAcrossReads checks the property the stream's hold-back
// exists for: a secret in any of its spellings, split between two reads
// at any offset, is still scrubbed, and the stream equals one-shot output.
// The text around it is long enough that the reads take the vector pass,
// and the replacer has every stage (escapes, wrapped base64, literal).
func TestReaderSplitAcrossReads(t *testing.T) {
	ctx, secrets := benchBody(900, 10, 0)
	secrets = append(secrets, Secret{Name: "AWS", Value: secret.FromString(awsKey)})
	r := Compile(secrets)
	b64 := base64.StdEncoding.EncodeToString([]byte("user:" + awsKey + ":end"))
	spellings := map[string]string{
		"raw":           awsKey,
		"php json":      strings.ReplaceAll(awsKey, "/", `\/`),
		"all \\u":       eachChar(awsKey, func(c byte) string { return fmt.Sprintf(`\u%04X`, c) }),
		"all percent":   eachChar(awsKey, func(c byte) string { return fmt.Sprintf("%%%02x", c) }),
		"base64":        b64,
		"wrapped crlf":  wrapLines(b64, 7, "\r\n"),
		"wrapped lf":    wrapLines(b64, 5, "\n"),
		"escaped b64":   strings.ReplaceAll(b64, "/", `\/`),
		"another":       secrets[3].Value.Reveal(),
		"another, \\/":  strings.ReplaceAll(secrets[0].Value.Reveal(), "_", `\u005f`),
		"one escape":    awsKey[:20] + fmt.Sprintf(`\u%04x`, awsKey[20]) + awsKey[21:],
		"cut by a read": awsKey + awsKey,
	}
	for name, sp := range spellings {
		t.Run(name, func(t *testing.T) {
			in := append(append(bytes.Clone(ctx[:400]), sp...), ctx[400:]...)
			want, count := r.Replace(nil, in)
			if count == 0 {
				t.Fatalf("one-shot: no replacement")
			}
			for cut := 0; cut <= len(in); cut++ {
				for _, bufSize := range []int{100, 32 << 10} {
					rd := r.NewReader(&chunkReader{data: in, sizes: []int{cut, len(in)}})
					got, err := readAllSized(rd, bufSize)
					if err != nil {
						t.Fatalf("cut at %d, buffer %d: got error %v", cut, bufSize, err)
					}
					if bytes.Contains(got, []byte(awsKey)) || bytes.Contains(got, []byte(sp)) {
						t.Fatalf("cut at %d, buffer %d: the output contains the secret", cut, bufSize)
					}
					if !bytes.Equal(got, want) || rd.Count() != count {
						t.Fatalf("cut at %d, buffer %d: got %d replacements, want %d; %s",
							cut, bufSize, rd.Count(), count, describeDiff(got, want))
					}
					_ = rd.Close()
				}
			}
		})
	}
}

// TestHoldStartExact checks the literal stage's hold-back against its
// definition, the first position from which the rest of the buffer is a
// proper prefix of a pattern: it must hold back no less (a secret split
// there would leak) and no more (a stream would wait for bytes it does
// not need). The tails end in prefixes of every length of every pattern,
// so that the sieve's grid meets them at every offset.
func TestHoldStartExact(t *testing.T) {
	ctx, secrets := benchBody(4096, 10, 0)
	for _, r := range []*Replacer{Compile(secrets), NewPairs([]Pair{{"abcdefghijklmnop", "x"}, {"abcdefghijklmnopqrstuvwxyz", "y"}})} {
		lit := r.stages[len(r.stages)-1]
		want := func(b []byte) int {
			for i := range b {
				for _, p := range lit.find {
					if len(p) > len(b)-i && strings.HasPrefix(p, string(b[i:])) {
						return i
					}
				}
			}
			return len(b)
		}
		check := func(b []byte) {
			if got, w := lit.holdStart(b, 0), want(b); got != w {
				t.Fatalf("holdStart of %d bytes: got %d, want %d", len(b), got, w)
			}
		}
		for _, p := range lit.find {
			for l := 1; l <= len(p); l++ {
				for _, pre := range []int{0, 1, 5, 200} {
					check(append(bytes.Clone(ctx[:pre]), p[:l]...))
				}
			}
		}
		for end := 0; end < 600; end++ {
			check(ctx[:end])
		}
	}
}
