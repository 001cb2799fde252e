package scrub

import (
	"bytes"
	"fmt"
	"testing"

	"keyhole/secret"
)

// sievePatterns reads 1 to 6 patterns of 4 to 40 bytes from blob: a count
// byte, then for each a length byte and that many bytes (fewer when blob
// runs out, and then none shorter than a gram).
func sievePatterns(blob []byte) (find, repl []string) {
	if len(blob) == 0 {
		return nil, nil
	}
	n := int(blob[0])%6 + 1
	blob = blob[1:]
	seen := make(map[string]bool)
	for i := 0; i < n && len(blob) > 1; i++ {
		l := min(int(blob[0])%37+gramLen, len(blob)-1)
		f := string(blob[1 : 1+l])
		blob = blob[1+l:]
		if len(f) < gramLen || seen[f] {
			continue
		}
		seen[f] = true
		find, repl = append(find, f), append(repl, fmt.Sprintf("<%d>", i))
	}
	return find, repl
}

// FuzzSieve plants patterns where the sieve's grams fall. The sieve looks
// at a gram every stride bytes from where a search starts, so each
// pattern is written at a multiple of the stride shifted by up to a
// pattern's length and a stride either way: a match whose first or last
// gram is the one looked at, one that a look just misses, matches side by
// side (a search starts right after a match). The stream is read in
// chunks of one to four strides, off by one either way, so that reads end
// on and next to those places too.
func FuzzSieve(f *testing.F) {
	f.Add([]byte("\x03\x00abcd\x02xabcdy\x0512345678\x00"), byte('a'), []byte{0, 1, 0, 1, 2, 3, 2, 5, 255}, []byte{1, 2, 7})
	f.Add([]byte("\x02\x05aaaaaaaaa\x00aaaa"), byte('a'), []byte{0, 0, 0, 1, 1, 1, 0, 2, 254}, []byte{0, 4, 9})
	f.Add([]byte("\x01\x1ftoken-abcdefghijklmnopqrstuvwxyz"), byte(' '), []byte{0, 3, 253, 0, 4, 0, 0, 5, 30}, []byte{3})
	f.Fuzz(func(t *testing.T, patsBlob []byte, fill byte, plan, chunks []byte) {
		find, repl := sievePatterns(patsBlob)
		s := forceSieve(find, repl)
		if s == nil || len(plan) > 3*64 {
			return
		}
		stride := s.wm.sieve.stride
		steps := len(plan)/3 + 4
		body := bytes.Repeat([]byte{fill}, steps*stride+s.maxLen)
		for i := 0; i+2 < len(plan); i += 3 {
			p := find[int(plan[i])%len(find)]
			shift := int(int8(plan[i+2])) % (len(p) + stride)
			at := min(max(0, int(plan[i+1])%steps*stride+shift), len(body)-len(p))
			copy(body[at:], p)
		}
		sizes := make([]int, len(chunks))
		for i, c := range chunks {
			sizes[i] = max(1, stride*(int(c)%4+1)+int(c>>2)%3-1)
		}
		bufSize := stride
		if len(chunks) > 0 {
			bufSize = sizes[0]
		}
		checkStream(t, &Replacer{stages: []*stage{s}}, find, repl, body, sizes, bufSize)
	})
}

// TestSieveCompiled checks that Compile puts the sieve in front of the
// literal search when there are more patterns than bytes.Index handles
// and every form is at least minSieveWindow bytes long, and not otherwise.
func TestSieveCompiled(t *testing.T) {
	for i, tc := range []struct {
		values []string
		sieve  bool
	}{
		{[]string{"sk_live_0123456789abcdef"}, true},
		{[]string{"0123456789ab", "abcdefghijkl"}, true},
		{[]string{"0123456789ab", "abcdefghijk"}, false},
		{[]string{"0123456789ab"}, false}, // four patterns: bytes.Index
	} {
		var secrets []Secret
		for k, v := range tc.values {
			secrets = append(secrets, Secret{Name: fmt.Sprint("S", k), Value: secret.FromString(v)})
		}
		stages := Compile(secrets).stages
		lit := stages[len(stages)-1]
		if got := lit.wm != nil && lit.wm.sieve != nil; got != tc.sieve {
			t.Errorf("case %d: sieve %v, want %v", i, got, tc.sieve)
		}
	}
}
