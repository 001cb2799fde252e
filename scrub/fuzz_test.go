package scrub

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"keyhole/secret"
)

// fuzzSecrets reads 1 to 8 secrets of 1 to 64 arbitrary bytes from blob:
// a count byte, then for each a length byte and that many bytes (fewer
// when blob runs out).
func fuzzSecrets(blob []byte) []Secret {
	if len(blob) == 0 {
		return nil
	}
	n := int(blob[0])%8 + 1
	blob = blob[1:]
	var out []Secret
	for i := 0; i < n && len(blob) > 1; i++ {
		l := min(int(blob[0])%64+1, len(blob)-1)
		out = append(out, Secret{Name: fmt.Sprintf("S%d", i), Value: secret.New(blob[1 : 1+l])})
		blob = blob[1+l:]
	}
	return out
}

// plant inserts patterns into body as plan says, three bytes per pattern:
// which pattern and, in two bytes, where.
func plant(body []byte, find []string, plan []byte) []byte {
	for i := 0; i+2 < len(plan) && i < 3*32 && len(find) > 0; i += 3 {
		f := find[int(plan[i])%len(find)]
		at := (int(plan[i+1])<<8 | int(plan[i+2])) % (len(body) + 1)
		body = append(body[:at:at], append([]byte(f), body[at:]...)...)
	}
	return body
}

// plantSpellings inserts spellings of secrets that decoders read as the
// value or one of its base64 forms, as plan says (four bytes each: which
// secret and form, where, and a seed): each character raw or escaped at
// random (percent, JSON \u or \/, either hex case), or a base64 form cut
// by line breaks.
func plantSpellings(body []byte, secrets []Secret, plan []byte) []byte {
	for i := 0; i+3 < len(plan) && i < 4*16; i += 4 {
		s := secrets[int(plan[i])%len(secrets)].Value.Reveal()
		rng := rand.New(rand.NewPCG(uint64(plan[i+3]), uint64(i)))
		var sp string
		if b64 := base64Forms(s); len(b64) > 0 && plan[i]&0x80 != 0 {
			sp = wrapSpelling(b64[int(plan[i+3])%len(b64)], rng)
		} else {
			sp = escapeSpelling(s, rng)
		}
		at := (int(plan[i+1])<<8 | int(plan[i+2])) % (len(body) + 1)
		body = append(body[:at:at], append([]byte(sp), body[at:]...)...)
	}
	return body
}

// escapeSpelling writes each byte of v raw or escaped, at random.
func escapeSpelling(v string, rng *rand.Rand) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch rng.IntN(6) {
		case 0:
			fmt.Fprintf(&b, "%%%02X", c)
		case 1:
			fmt.Fprintf(&b, "%%%02x", c)
		case 2:
			if c < 0x80 {
				fmt.Fprintf(&b, `\u%04X`, c)
			} else {
				b.WriteByte(c)
			}
		case 3:
			if c < 0x80 {
				fmt.Fprintf(&b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		case 4:
			if c == '/' || c == '"' || c == '\\' {
				b.WriteString(`\` + string(c))
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// wrapSpelling cuts f by line breaks, LF or CRLF, at random.
func wrapSpelling(f string, rng *rand.Rand) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if i > 0 && rng.IntN(8) == 0 {
			b.WriteString([]string{"\n", "\r\n"}[rng.IntN(2)])
		}
		b.WriteByte(f[i])
	}
	return b.String()
}

// chunkSizes turns fuzz bytes into read sizes of 1 to 256 bytes.
func chunkSizes(b []byte) []int {
	sizes := make([]int, len(b))
	for i, c := range b {
		sizes[i] = int(c) + 1
	}
	return sizes
}

// checkStream asserts the invariants of r on in: one-shot output equals
// the naive reference of every stage, the reference of the literal stage
// (find, repl) leaves no pattern in bytes it copied, and streamed output
// through reads of the given sizes equals one-shot output.
func checkStream(t *testing.T, r *Replacer, find, repl []string, in []byte, sizes []int, bufSize int) {
	t.Helper()
	lit, spans := naive(find, repl, in)
	checkLeak(t, find, lit, spans)
	want, count := reference(r, in)
	got, n := r.Replace(nil, in)
	if !bytes.Equal(got, want) || n != count {
		t.Fatalf("Replace: got %d replacements, want %d; %s", n, count, describeDiff(got, want))
	}
	if s, n := r.ReplaceString(string(in)); s != string(want) || n != count {
		t.Fatalf("ReplaceString: got %d replacements, want %d; %s", n, count, describeDiff([]byte(s), want))
	}
	rd := r.NewReader(&chunkReader{data: in, sizes: sizes})
	streamed, err := readAllSized(rd, bufSize)
	if err != nil || !bytes.Equal(streamed, want) || rd.Count() != count {
		t.Fatalf("stream (chunks %v, buffer %d): error %v, got %d replacements, want %d; %s",
			sizes, bufSize, err, rd.Count(), count, describeDiff(streamed, want))
	}
}

// FuzzStream compiles random secrets, plants their forms in a random body
// and checks that streamed output, for random read sizes, equals one-shot
// output, which equals a naive reference that leaves no secret behind.
func FuzzStream(f *testing.F) {
	f.Add([]byte("\x02\x0fsk_live_abcdefg\x04ab/c"), []byte(`{"a":"b"}`), []byte{0, 0, 3, 1, 0, 0}, []byte{1, 2, 3})
	f.Add([]byte("\x01\x02aa"), []byte("aaaaaaa"), []byte{}, []byte{0})
	f.Add([]byte("\x03\x03abc\x05abcde\x01c"), []byte("xxabcdexx"), []byte{1, 0, 2, 2, 0, 9}, []byte{4, 0, 200})
	f.Add([]byte("\x01\x1cwJalrXUtnFEMI/K7MDENG+bPxRfiCY"), []byte(`{"a":"b"}`+"\n"), []byte{0, 0, 3, 7, 0x80, 0, 5, 9, 0, 0, 1, 3}, []byte{5, 1, 9})
	// Bodies long enough for the vector pass, read in pieces that cut
	// the planted forms and the held bytes of several stages at once.
	long := []byte(strings.Repeat(`{"id":"evt_1","url":"\/v1\/x","d":"a b"}`+"\n", 8))
	f.Add([]byte("\x02\x1cwJalrXUtnFEMI/K7MDENG+bPxRfiCY\x10sk_live_abcdefgh"), long, []byte{0, 0, 70, 1, 0, 130, 0x80, 0, 200, 9, 1, 1, 5, 3}, []byte{63, 0, 64, 130, 1})
	f.Add([]byte("\x01\x20abcdefghijklmnopqrstuvwxyz012345"), long, []byte{0x80, 0, 64, 3, 0, 1, 10, 7}, []byte{30, 31, 32, 33, 200})
	f.Fuzz(func(t *testing.T, secretsBlob, body, plan, chunks []byte) {
		secrets := fuzzSecrets(secretsBlob)
		if len(secrets) == 0 || len(body) > 1<<16 {
			return
		}
		r := Compile(secrets)
		find, repl := patterns(t, r)
		in := plant(body, find, plan)
		in = plantSpellings(in, secrets, plan)
		bufSize := 1
		if len(chunks) > 0 {
			bufSize = int(chunks[0])*37 + 1
		}
		checkStream(t, r, find, repl, in, chunkSizes(chunks), bufSize)
	})
}

// FuzzReplace checks random literal pairs on both search strategies
// against the naive reference, on a body repeated so that it is long
// enough for the two-lane scan.
func FuzzReplace(f *testing.F) {
	f.Add([]byte("\x02\x03abc\x01X\x02bc\x00"), []byte("zabcbcz"), byte(3), []byte{1, 5})
	f.Add([]byte("\x01\x01a\x05<<A>>"), []byte("banana"), byte(0), []byte{0})
	f.Add([]byte("\x04\x04\x00\x01\x02\x03\x00\x02\x00\x01\x01\x01\x02\x03ab\x01Y"), []byte("\x00\x01\x02\x03\x00\x01"), byte(200), []byte{2, 255, 7})
	f.Fuzz(func(t *testing.T, pairsBlob, body []byte, repeat byte, chunks []byte) {
		pairs := fuzzPairs(pairsBlob)
		if len(pairs) == 0 || len(body) > 1<<10 {
			return
		}
		in := bytes.Repeat(body, int(repeat)%16+1)
		r := NewPairs(pairs)
		find, repl := patterns(t, r)
		for _, e := range engines(find, repl) {
			checkStream(t, e, find, repl, in, chunkSizes(chunks), 1+len(in)%5000)
		}
	})
}

// fuzzPairs reads 1 to 6 pairs from blob: a count byte, then for each a
// length byte and a find of 1 to 16 bytes, a length byte and a replacement
// of 0 to 16 bytes.
func fuzzPairs(blob []byte) []Pair {
	take := func(minLen int) ([]byte, bool) {
		if len(blob) == 0 {
			return nil, false
		}
		l := min(int(blob[0])%17, len(blob)-1)
		if l < minLen {
			return nil, false
		}
		v := blob[1 : 1+l]
		blob = blob[1+l:]
		return v, true
	}
	if len(blob) == 0 {
		return nil
	}
	n := int(blob[0])%6 + 1
	blob = blob[1:]
	var out []Pair
	for range n {
		f, ok := take(1)
		if !ok {
			break
		}
		r, _ := take(0)
		out = append(out, Pair{Find: string(f), Replace: string(r)})
	}
	return out
}
