package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSecret is the value of the variable a fuzz seed's source names; no
// error, warning or summary may contain it.
const fuzzSecret = "sk_fuzz_never_print_me_0123456789"

// FuzzParse checks that Parse never panics on any input, that every error
// is one line, "fuzz.yaml:LINE: ...", with LINE inside the input, and that a
// file that loads re-encodes (canonical) to a file that loads to the same
// rules and summary.
func FuzzParse(f *testing.F) {
	f.Setenv("KEYHOLE_FUZZ_SECRET", fuzzSecret)
	for _, pattern := range []string{"testdata/valid/*.yaml", "testdata/invalid/*.yaml"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		lines := yamlLineCount(string(data))
		if err != nil {
			if s != nil {
				t.Fatalf("got a Set with error %v", err)
			}
			var list Errors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("got %T %v, want a non-empty Errors", err, err)
			}
			for _, e := range list {
				checkMessage(t, e.Error(), e.Line, lines)
			}
			return
		}
		for _, w := range s.Warnings {
			line := 0
			fmt.Sscanf(strings.TrimPrefix(w, "fuzz.yaml:"), "%d:", &line)
			checkMessage(t, w, line, lines)
		}
		if strings.Contains(s.Summary(), fuzzSecret) {
			t.Fatalf("summary contains the secret")
		}

		canon := canonical(t, s)
		again, err := Parse("fuzz.yaml", []byte(canon))
		if err != nil {
			t.Fatalf("canonical form %q: got error %v, want none", canon, err)
		}
		if got, want := again.Summary(), s.Summary(); got != want {
			t.Fatalf("summary round trip: got %q, want %q", got, want)
		}
		if got := canonical(t, again); got != canon {
			t.Fatalf("canonical round trip: got\n%s\nwant\n%s", got, canon)
		}
	})
}

// checkMessage checks one error or warning line.
func checkMessage(t *testing.T, msg string, line, lines int) {
	t.Helper()
	if i := strings.Index(msg, fuzzSecret); i >= 0 {
		t.Fatalf("message contains secret KEYHOLE_FUZZ_SECRET at offset %d", i)
	}
	if want := fmt.Sprintf("fuzz.yaml:%d: ", line); !strings.HasPrefix(msg, want) {
		t.Fatalf("got %q, want it to start with %q", msg, want)
	}
	if line < 1 || line > lines {
		t.Fatalf("got line %d, want 1..%d: %q", line, lines, msg)
	}
	if strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("got %q, want one line", msg)
	}
}

// yamlLineCount counts lines as YAML does: LF, CR, CRLF, NEL, LS and PS
// each end one.
func yamlLineCount(s string) int {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	n := 1
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += strings.Count(s, brk)
	}
	return n
}

// FuzzVaultRef checks that the vault: reference parser never panics, that
// an accepted reference prints back as itself, and that an error never
// quotes the reference.
func FuzzVaultRef(f *testing.F) {
	for _, s := range []string{"secret/data/stripe#api_key", "database/creds/readonly#password", "a#b#c", "#x", "x#", "a/../b#c", "/a#b", "kv/x y#z", "a//b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		src, err := ParseSource("vault:"+ref, ".")
		if err != nil {
			// Messages are fixed sentences; one of them has an example
			// reference that short inputs may match.
			if msg := strings.Replace(err.Error(), "vault:secret/data/stripe#api_key", "", 1); len(ref) > 3 && strings.Contains(msg, ref) {
				t.Fatalf("the error quotes the reference: %v", err)
			}
			return
		}
		vs := src.(VaultSource)
		if got := vs.String(); got != "vault:"+ref {
			t.Fatalf("got %q, want %q", got, "vault:"+ref)
		}
		if vs.Path == "" || vs.Field == "" || strings.Contains(vs.Field, "#") {
			t.Fatalf("accepted path %q field %q", vs.Path, vs.Field)
		}
		for _, seg := range strings.Split(vs.Path, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted path %q with segment %q", vs.Path, seg)
			}
		}
	})
}
