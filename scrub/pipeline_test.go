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
