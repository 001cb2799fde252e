package scrub

import (
	"bytes"
	"fmt"
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

// chunkSizes turns fuzz bytes into read sizes of 1 to 256 bytes.
func chunkSizes(b []byte) []int {
	sizes := make([]int, len(b))
	for i, c := range b {
		sizes[i] = int(c) + 1
	}
	return sizes
}

// checkStream asserts the invariants of r on in: one-shot output equals the
// naive reference, the reference leaves no pattern in bytes it copied, and
// streamed output through reads of the given sizes equals one-shot output.
func checkStream(t *testing.T, r *Replacer, find, repl []string, in []byte, sizes []int, bufSize int) {
	t.Helper()
	want, spans := naive(find, repl, in)
	checkLeak(t, find, want, spans)
	got, n := r.Replace(nil, in)
	if !bytes.Equal(got, want) || n != len(spans) {
		t.Fatalf("Replace: got %d replacements, want %d; %s", n, len(spans), describeDiff(got, want))
	}
	if s, n := r.ReplaceString(string(in)); s != string(want) || n != len(spans) {
		t.Fatalf("ReplaceString: got %d replacements, want %d; %s", n, len(spans), describeDiff([]byte(s), want))
	}
	rd := r.NewReader(&chunkReader{data: in, sizes: sizes})
	streamed, err := readAllSized(rd, bufSize)
	if err != nil || !bytes.Equal(streamed, want) || rd.Count() != len(spans) {
		t.Fatalf("stream (chunks %v, buffer %d): error %v, got %d replacements, want %d; %s",
			sizes, bufSize, err, rd.Count(), len(spans), describeDiff(streamed, want))
	}
}

// FuzzStream compiles random secrets, plants their forms in a random body
// and checks that streamed output, for random read sizes, equals one-shot
// output, which equals a naive reference that leaves no secret behind.
func FuzzStream(f *testing.F) {
	f.Add([]byte("\x02\x0fsk_live_abcdefg\x04ab/c"), []byte(`{"a":"b"}`), []byte{0, 0, 3, 1, 0, 0}, []byte{1, 2, 3})
	f.Add([]byte("\x01\x02aa"), []byte("aaaaaaa"), []byte{}, []byte{0})
	f.Add([]byte("\x03\x03abc\x05abcde\x01c"), []byte("xxabcdexx"), []byte{1, 0, 2, 2, 0, 9}, []byte{4, 0, 200})
	f.Fuzz(func(t *testing.T, secretsBlob, body, plan, chunks []byte) {
		secrets := fuzzSecrets(secretsBlob)
		if len(secrets) == 0 || len(body) > 1<<16 {
			return
		}
		r := Compile(secrets)
		find, repl := patterns(t, r)
		in := plant(body, find, plan)
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
