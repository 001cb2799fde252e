package scrub

import (
	"testing"

	"keyhole/secret"
)

// TestFollowers checks what lets the vector pass skip a special byte: no
// decoding stage starts from a %, \ or line feed followed by a byte that
// follows reports false, whatever the secrets (here every byte value is
// in one, so that every byte is a pattern byte).
func TestFollowers(t *testing.T) {
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	r := Compile([]Secret{{Name: "ALL", Value: secret.New(all)}, {Name: "AWS", Value: secret.FromString(awsKey)}})
	for _, s := range r.stages {
		if s.m == nil {
			continue
		}
		for _, special := range []byte{'%', '\\', '\n'} {
			for c := range 256 {
				if follows(byte(c)) {
					continue
				}
				for _, before := range []string{"A", "\r", "A\r", ""} {
					b := []byte(before + string(special) + string(rune(0)) + "AAAA")
					at := len(before)
					b[at+1] = byte(c)
					if s.m.at(b, at) {
						t.Fatalf("stage %T starts from %q followed by %#x, which follows says it does not", s.m, special, c)
					}
				}
			}
		}
	}
}
