package scrub

import (
	"encoding/json"
	"net/url"
	"testing"
)

func TestUnitAt(t *testing.T) {
	tests := []struct {
		in     string
		n      int
		dec    string
		escape bool
	}{
		{"%2F", 3, "/", true},
		{"%2f", 3, "/", true},
		{"%2", 1, "%", false},
		{"%zz", 1, "%", false},
		{`\/`, 2, "/", true},
		{`\n`, 2, "\n", true},
		{`\x`, 1, `\`, false},
		{`\u002F`, 6, "/", true},
		{`\u002f`, 6, "/", true},
		{`\u00e9`, 6, "é", true},
		{`\uD83D\uDE00`, 12, "😀", true},
		{`\ud83d\ude00`, 12, "😀", true},
		{`\uD83Dx`, 6, "\uFFFD", true},
		{`\uDE00`, 6, "\uFFFD", true},
		{`\u12`, 1, `\`, false},
		{"a", 1, "a", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u := unitAt([]byte(tc.in), 0)
			if u.n != tc.n || string(u.dec[:u.dn]) != tc.dec || u.escape != tc.escape {
				t.Errorf("got %d %q %v, want %d %q %v", u.n, u.dec[:u.dn], u.escape, tc.n, tc.dec, tc.escape)
			}
		})
	}
}

func TestIncomplete(t *testing.T) {
	for in, want := range map[string]bool{
		"%": true, "%4": true, "%41": false, "%x": false,
		`\`: true, `\u`: true, `\u00`: true, `\u0041`: false, `\x`: false, `\n`: false,
		`\uD83D`: true, `\uD83D\`: true, `\uD83D\uDE`: true, `\uD83D\uDE0`: true, `\uD83Dx`: false, `\uD83D\u00`: false,
	} {
		if got := incomplete([]byte(in)); got != want {
			t.Errorf("incomplete(%q): got %v, want %v", in, got, want)
		}
	}
}

// FuzzUnits checks that units tile any text and that each escape decodes
// as encoding/json or net/url decode it.
func FuzzUnits(f *testing.F) {
	for _, s := range []string{`a%2Fb\/c\u00e9\uD83D\uDE00\uDE00%zz\`, "%%41", `\\u0041`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := 0; i < len(b); {
			u := unitAt(b, i)
			if u.n < 1 || u.n > maxUnit || i+u.n > len(b) || u.dn < 1 {
				t.Fatalf("unit at %d: got %d bytes decoding to %d", i, u.n, u.dn)
			}
			raw := b[i : i+u.n]
			var want string
			switch {
			case !u.escape:
				want = string(raw)
			case raw[0] == '%':
				var err error
				if want, err = url.PathUnescape(string(raw)); err != nil {
					t.Fatalf("%q: url: %v", raw, err)
				}
			default:
				if err := json.Unmarshal([]byte(`"`+string(raw)+`"`), &want); err != nil {
					t.Fatalf("%q: json: %v", raw, err)
				}
			}
			if got := string(u.dec[:u.dn]); got != want {
				t.Fatalf("%q: got %q, want %q", raw, got, want)
			}
			if p := resync(b, i+u.n, 0); p > i+u.n {
				t.Fatalf("resync went forward")
			}
			i += u.n
		}
	})
}
