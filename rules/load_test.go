package rules

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testValues are the credentials the golden tests put in the environment.
// No output may contain any of them.
var testValues = map[string]string{
	"KEYHOLE_TEST_STRIPE":      "sk_test_golden_0123456789",
	"KEYHOLE_TEST_STRIPE_TWIN": "sk_test_golden_0123456789",
	"KEYHOLE_TEST_TOKEN":       "agent_token_golden_abcdef",
	"KEYHOLE_TEST_OPENAI":      "sk-openai-golden-value",
	"KEYHOLE_TEST_SHORT":       "abc",
	"KEYHOLE_TEST_NEWLINE":     "line1\nline2",
}

// pasted are credentials written where a source reference belongs in
// testdata/invalid/sources.yaml.
var pasted = []string{"sk_live_this_looks_like_a_real_key", "tok_pasted_token_value", "ghp_golden_file_token", "ci_token_with_crlf"}

func setTestEnv(t *testing.T) {
	t.Helper()
	for k, v := range testValues {
		t.Setenv(k, v)
	}
	t.Setenv("KEYHOLE_TEST_UNSET", "")
	os.Unsetenv("KEYHOLE_TEST_UNSET")
}

// assertNoValue fails when out holds a test credential, naming the
// credential's variable and offset, never its bytes.
func assertNoValue(t *testing.T, what, out string) {
	t.Helper()
	for name, v := range testValues {
		if len(v) >= minScrubLen {
			if i := strings.Index(out, v); i >= 0 {
				t.Errorf("%s contains secret %s at offset %d", what, name, i)
			}
		}
	}
	for i, v := range pasted {
		if j := strings.Index(out, v); j >= 0 {
			t.Errorf("%s contains pasted credential #%d at offset %d", what, i, j)
		}
	}
}

// golden compares got with the file path, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", got, path, want)
	}
}

// describeSet renders a loaded Set for a golden file: its summary, warnings,
// whether each source could be read, and the canonical re-encoding.
func describeSet(t *testing.T, s *Set) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# summary\n%s\n# warnings\n", s.Summary())
	for _, w := range s.Warnings {
		b.WriteString(w + "\n")
	}
	b.WriteString("# values\n")
	for _, name := range s.SecretNames() {
		v, err := s.Secrets[name].Value()
		fmt.Fprintf(&b, "secrets.%s: %s\n", name, readOutcome(v.Len(), err))
	}
	for _, name := range s.AgentNames() {
		v, err := s.Agents[name].TokenValue()
		fmt.Fprintf(&b, "agents.%s: %s\n", name, readOutcome(v.Len(), err))
	}
	fmt.Fprintf(&b, "# source files\n%s\n# canonical\n%s", strings.Join(s.SourceFiles(), "\n"), canonical(t, s))
	return b.String()
}

func readOutcome(n int, err error) string {
	if err != nil {
		return "unavailable: " + err.Error()
	}
	return fmt.Sprintf("%d bytes", n)
}

func TestLoadValid(t *testing.T) {
	setTestEnv(t)
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/valid/*.yaml")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			s, err := Load(file)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got := describeSet(t, s)
			assertNoValue(t, "golden output", got)
			golden(t, strings.TrimSuffix(file, ".yaml")+".golden", got)

			// The canonical form loads to the same rules. Its sources are
			// relative to the working directory, and so is it.
			rt := filepath.Base(file)
			again, err := LoadData(rt, []byte(canonical(t, s)))
			if err != nil {
				t.Fatalf("canonical form: got error %v, want none", err)
			}
			if got, want := canonical(t, again), canonical(t, s); got != want {
				t.Errorf("canonical round trip: got\n%s\nwant\n%s", got, want)
			}
			if got, want := strings.TrimPrefix(again.Summary(), rt), strings.TrimPrefix(s.Summary(), file); got != want {
				t.Errorf("summary round trip: got %q, want %q", got, want)
			}
		})
	}
}

func TestLoadInvalid(t *testing.T) {
	setTestEnv(t)
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/invalid/*.yaml")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			s, err := Load(file)
			if err == nil {
				t.Fatalf("got %v, want an error", s.Summary())
			}
			if s != nil {
				t.Errorf("got a Set with the error, want nil")
			}
			var list Errors
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("got %T, want a non-empty Errors", err)
			}
			prev := 0
			for _, e := range list {
				if !strings.HasPrefix(e.Error(), file+":") {
					t.Errorf("got %q, want it to start with %q", e.Error(), file+":")
				}
				if e.Line < prev {
					t.Errorf("got line %d after line %d, want line order", e.Line, prev)
				}
				prev = e.Line
			}
			got := err.Error() + "\n"
			assertNoValue(t, "error", got)
			golden(t, strings.TrimSuffix(file, ".yaml")+".golden", got)
		})
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Load("testdata/invalid/five_errors.yaml")
	want := []struct {
		line  int
		field string
	}{
		{5, "secrets.STRIPE_LIVE.hosts"},
		{6, "secrets.STRIPE_LIVE.paths[0]"},
		{10, "agents.billing.secrets[1]"},
		{12, "egress.default"},
		{13, "egress.colour"},
	}
	var list Errors
	if !errors.As(err, &list) {
		t.Fatalf("got %v, want Errors", err)
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		if list[i].Line != w.line || list[i].Field != w.field {
			t.Errorf("error %d: got line %d field %s, want line %d field %s", i, list[i].Line, list[i].Field, w.line, w.field)
		}
	}
	var one *Error
	if !errors.As(err, &one) || one != list[0] {
		t.Errorf("errors.As(*Error): got %v, want the first error", one)
	}
}
