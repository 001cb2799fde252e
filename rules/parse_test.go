package rules

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseEdges covers inputs at the edge of YAML: each either loads, or
// fails with exactly the errors listed.
func TestParseEdges(t *testing.T) {
	const ok = "x.yaml: ok: 0 secrets, 0 agents, egress default allow (0 allow, 0 deny), 0 pins"
	tests := []struct {
		name string
		in   string
		want string // the summary, or every error line
	}{
		{"empty", "", ok},
		{"blank lines", "\n\n  \n", ok},
		{"comment", "# nothing\n", ok},
		{"document start", "---\n", ok},
		{"document start and end", "---\n...\n", ok},
		{"empty mapping", "{}", ok},
		{"empty mapping in a document", "--- {}\n", ok},
		{"byte order mark", "\ufeffegress: {default: deny}\n", "x.yaml: ok: 0 secrets, 0 agents, egress default deny (0 allow, 0 deny), 0 pins"},
		{"empty sections", "secrets: {}\nresolve: {}\negress: {}\n", ok},
		{"CRLF lines", "egress:\r\n  default: allow\r\n  deny: [\"\"]\r\n", "x.yaml:3: egress.deny[0]: empty host"},
		{"CR lines", "egress:\r  default: allow\r  deny: [\"\"]\r", "x.yaml:3: egress.deny[0]: empty host"},
		{"explicit null root", "null\n", "x.yaml:1: must be a mapping, got null"},
		{"tilde root", "~\n", "x.yaml:1: must be a mapping, got null"},
		{"tagged null root", "!!null\n", "x.yaml:1: explicit YAML tags such as \"!!null\" are not supported\nx.yaml:1: must be a mapping, got null"},
		{"number root", "42\n", "x.yaml:1: must be a mapping, got a number"},
		{"list root", "- a\n", "x.yaml:1: must be a mapping, got a list"},
		{"second document", "{}\n---\n{}\n", "x.yaml:2: the file holds more than one YAML document (a second \"---\")"},
		{"syntax error in the second document", "{}\n---\na: [\n", "x.yaml:4: YAML syntax error: did not find expected node content"},
		{"unclosed flow list", "secrets:\n  A:\n    hosts: [a.example\n", "x.yaml:3: YAML syntax error: did not find expected ',' or ']'"},
		{"unclosed quote", "secrets:\n  A:\n    source: \"env:A\n", "x.yaml:3: YAML syntax error: found unexpected end of stream"},
		{"bad indentation", "secrets:\n  A:\n    source: env:A\n hosts: []\n", "x.yaml:4: YAML syntax error: did not find expected key"},
		{"mapping in a scalar", "egress: default: deny\n", "x.yaml:1: YAML syntax error: mapping values are not allowed in this context"},
		{"unknown anchor", "egress: *nope\n", "x.yaml:1: YAML syntax error: unknown anchor 'nope' referenced"},
		{"NUL byte", "egress:\n  default: \x00\n", "x.yaml:2: character U+0000 is not allowed in YAML"},
		{"invalid UTF-8", "egress:\n\n  default: \xc3\x28\n", "x.yaml:3: the file is not valid UTF-8"},
		{"deep nesting", "egress: " + strings.Repeat("[", 20) + strings.Repeat("]", 20) + "\n", "x.yaml:1: egress[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested deeper than 16 levels"},
		{"merge key", "egress:\n  <<: {default: deny}\n", "x.yaml:2: egress.\"<<\": unknown field (want one of default, allow, deny, block_private)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse("x.yaml", []byte(tc.in))
			got := ""
			if err != nil {
				got = err.Error()
			} else {
				got = s.Summary()
			}
			if got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	line := "# " + strings.Repeat("x", 1021) + "\n" // 1 KiB a line
	data := []byte(strings.Repeat(line, MaxFileSize/len(line)+1))
	_, err := Parse("big.yaml", data)
	want := "big.yaml:4097: the file is larger than 4194304 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}

	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasSuffix(err.Error(), "the file is larger than 4194304 bytes") {
		t.Errorf("Load: got %v, want the file is larger than 4194304 bytes", err)
	}
	if _, err := Parse("ok.yaml", data[:MaxFileSize]); err != nil {
		t.Errorf("a file of MaxFileSize bytes: got %v, want no error", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "load rules: ") {
		t.Errorf("got %v, want it prefixed with load rules: ", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "k.yaml", Line: 3, Field: "secrets.A.hosts[1]", Msg: "empty host"}, "k.yaml:3: secrets.A.hosts[1]: empty host"},
		{&Error{File: "k.yaml", Line: 1, Msg: "YAML syntax error: x"}, "k.yaml:1: YAML syntax error: x"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	list := Errors{tests[0].err, tests[1].err}
	if got, want := list.Error(), errors.Join(tests[0].err, tests[1].err).Error(); got != want {
		t.Errorf("Errors.Error: got %q, want %q, as errors.Join prints", got, want)
	}
	if got := list.Unwrap(); len(got) != 2 || got[1] != error(tests[1].err) {
		t.Errorf("Unwrap: got %v, want both errors", got)
	}
}

func TestJoinField(t *testing.T) {
	tests := []struct{ field, key, want string }{
		{"", "secrets", "secrets"},
		{"secrets", "STRIPE_LIVE", "secrets.STRIPE_LIVE"},
		{"agents", "ci-bot", "agents.ci-bot"},
		{"agents", "bot.v2", `agents."bot.v2"`},
		{"resolve", "api.stripe.com", `resolve."api.stripe.com"`},
		{"secrets", "", `secrets.""`},
		{"secrets", "a\nb", `secrets."a\nb"`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := join(tc.field, tc.key); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
