package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		name, ref, dir string
		want           string // Source.String(); "" for an error
	}{
		{"env", "env:STRIPE_KEY", "/etc", "env:STRIPE_KEY"},
		{"env underscore", "env:_X1", "/etc", "env:_X1"},
		{"absolute file", "file:/run/secrets/key", "/etc", "file:/run/secrets/key"},
		{"relative file", "file:secrets/key", "/etc/keyhole", "file:/etc/keyhole/secrets/key"},
		{"relative file cleaned", "file:./a/../key", "conf", "file:conf/key"},
		{"env digit first", "env:1X", ".", ""},
		{"env empty", "env:", ".", ""},
		{"env dash", "env:A-B", ".", ""},
		{"file empty", "file:", ".", ""},
		{"file with a newline", "file:/a\nb", ".", ""},
		{"no kind", "sk_live_abc", ".", ""},
		{"unknown kind", "vault:x", ".", ""},
		{"upper kind", "ENV:X", ".", ""},
		{"exec", "exec:op read op://Private/Stripe/credential", "/etc", "exec:op read op://Private/Stripe/credential"},
		{"exec spaces", "exec:  pass   show stripe ", "/etc", "exec:pass show stripe"},
		{"exec relative", "exec:./bin/token a", "/etc/keyhole", "exec:/etc/keyhole/bin/token a"},
		{"exec absolute", "exec:/usr/bin/aws secretsmanager", "/etc", "exec:/usr/bin/aws secretsmanager"},
		{"exec empty", "exec:", ".", ""},
		{"exec blank", "exec:   ", ".", ""},
		{"exec newline", "exec:a\nb", ".", ""},
		{"vault kv2", "vault:secret/data/stripe#api_key", ".", "vault:secret/data/stripe#api_key"},
		{"vault dynamic", "vault:database/creds/readonly#password", ".", "vault:database/creds/readonly#password"},
		{"vault no field", "vault:kv/stripe", ".", ""},
		{"vault two hashes", "vault:a#b#c", ".", ""},
		{"vault empty path", "vault:#x", ".", ""},
		{"vault dotdot", "vault:secret/../x#y", ".", ""},
		{"vault space", "vault:sec ret#y", ".", ""},
		{"store", "store:SENDGRID", ".", "store:SENDGRID"},
		{"store bad", "store:a-b", ".", ""},
		{"store empty", "store:", ".", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ParseSource(tc.ref, tc.dir)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %v, want an error", src)
				}
				if strings.Contains(err.Error(), tc.ref) && !strings.HasSuffix(tc.ref, ":") {
					t.Errorf("got %q, want the reference left out", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %s", err, tc.want)
			}
			if got := src.String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEnvSource(t *testing.T) {
	t.Setenv("KEYHOLE_SRC_OK", "sk_test_value_1")
	t.Setenv("KEYHOLE_SRC_EMPTY", "")
	t.Setenv("KEYHOLE_SRC_CR", "abc\rdef")
	t.Setenv("KEYHOLE_SRC_DEL", "abc\x7f")
	t.Setenv("KEYHOLE_SRC_TAB", "a\tb")
	t.Setenv("KEYHOLE_SRC_UNSET", "")
	os.Unsetenv("KEYHOLE_SRC_UNSET")
	tests := []struct {
		name    string
		src     EnvSource
		wantLen int    // when readable
		wantErr string // substring of the error
	}{
		{"set", "KEYHOLE_SRC_OK", 15, ""},
		{"tab is allowed", "KEYHOLE_SRC_TAB", 3, ""},
		{"unset", "KEYHOLE_SRC_UNSET", 0, "env:KEYHOLE_SRC_UNSET: the variable is not set"},
		{"empty", "KEYHOLE_SRC_EMPTY", 0, "the value is empty"},
		{"carriage return", "KEYHOLE_SRC_CR", 0, "control character at byte 3"},
		{"delete", "KEYHOLE_SRC_DEL", 0, "control character at byte 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRead(t, tc.src, tc.wantLen, tc.wantErr)
		})
	}
}

func TestFileSource(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) FileSource {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return FileSource(p)
	}
	tests := []struct {
		name    string
		src     FileSource
		wantLen int
		wantErr string
	}{
		{"plain", write("plain", "sk_file_value"), 13, ""},
		{"trailing newline", write("lf", "sk_file_value\n"), 13, ""},
		{"trailing CRLF", write("crlf", "sk_file_value\r\n"), 13, ""},
		{"only one newline trimmed", write("lflf", "sk_file_value\n\n"), 0, "control character at byte 13"},
		{"inner newline", write("inner", "sk_file\nvalue"), 0, "control character at byte 7"},
		{"NUL", write("nul", "sk\x00file"), 0, "control character at byte 2"},
		{"empty", write("empty", ""), 0, "the value is empty"},
		{"just a newline", write("nl", "\n"), 0, "the value is empty"},
		{"too large", write("large", strings.Repeat("a", MaxSecretSize+1)), 0, "larger than"},
		{"largest", write("largest", strings.Repeat("a", MaxSecretSize)), MaxSecretSize, ""},
		{"missing", FileSource(filepath.Join(dir, "missing")), 0, "no such file or directory"},
		{"directory", FileSource(dir), 0, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRead(t, tc.src, tc.wantLen, tc.wantErr)
		})
	}
}

// checkRead reads src and checks the outcome; an error must name the source
// once, at its start, and never hold the file's bytes.
func checkRead(t *testing.T, src Source, wantLen int, wantErr string) {
	t.Helper()
	v, _, err := src.Read(context.Background())
	if wantErr == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		if v.Len() != wantLen {
			t.Errorf("got %d bytes, want %d", v.Len(), wantLen)
		}
		return
	}
	if err == nil {
		t.Fatalf("got a %d-byte value, want an error containing %q", v.Len(), wantErr)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("got %q, want it to contain %q", err, wantErr)
	}
	if !strings.HasPrefix(err.Error(), src.String()+": ") || strings.Count(err.Error(), src.String()) != 1 {
		t.Errorf("got %q, want it to name %s once, first", err, src)
	}
	if !v.IsZero() {
		t.Errorf("got a %d-byte value with the error, want none", v.Len())
	}
}

// TestLoadSources checks what Load makes of sources: a value is read once,
// relative files are found next to the rules file, and one that cannot be
// read is a warning with its line, and the secret's Value error.
func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.txt"), []byte("sk_from_file_123\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYHOLE_LOAD_KEY", "sk_from_env_456")
	t.Setenv("KEYHOLE_LOAD_UNSET", "")
	os.Unsetenv("KEYHOLE_LOAD_UNSET")
	rulesFile := filepath.Join(dir, "keyhole.yaml")
	data := `secrets:
  FROM_FILE:
    source: file:key.txt
    hosts: [a.example]
  FROM_ENV:
    source: env:KEYHOLE_LOAD_KEY
    hosts: [b.example]
  SAME_FILE:
    source: file:./key.txt
    hosts: [c.example]
  GONE:
    source: env:KEYHOLE_LOAD_UNSET
    hosts: [d.example]
agents:
  bot:
    token: file:missing-token
    secrets: [FROM_FILE]
`
	if err := os.WriteFile(rulesFile, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(rulesFile)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	values := map[string]string{"FROM_FILE": "sk_from_file_123", "FROM_ENV": "sk_from_env_456", "SAME_FILE": "sk_from_file_123"}
	for name, want := range values {
		v, err := s.Secrets[name].Value()
		if err != nil || !v.Equal(want) {
			t.Errorf("secret %s: got a %d-byte value and error %v, want the %d-byte value", name, v.Len(), err, len(want))
		}
	}
	if _, err := s.Secrets["GONE"].Value(); err == nil || err.Error() != "env:KEYHOLE_LOAD_UNSET: the variable is not set" {
		t.Errorf("GONE: got error %v, want the variable is not set", err)
	}
	if tok, err := s.Agents["bot"].TokenValue(); err == nil || !tok.IsZero() {
		t.Errorf("bot: got error %v, want the file's absence", err)
	}
	if s.Agents["bot"].CheckToken("") {
		t.Errorf("CheckToken(\"\") with an unreadable token: got true, want false")
	}
	wantWarnings := []string{
		rulesFile + ":9: secrets.SAME_FILE.source: file:" + filepath.Join(dir, "key.txt") + ": holds the same value as secrets.FROM_FILE",
		rulesFile + ":12: secrets.GONE.source: env:KEYHOLE_LOAD_UNSET: the variable is not set",
		rulesFile + ":16: agents.bot.token: file:" + filepath.Join(dir, "missing-token") + ": no such file or directory",
	}
	if got := strings.Join(s.Warnings, "\n"); got != strings.Join(wantWarnings, "\n") {
		t.Errorf("got warnings\n%s\nwant\n%s", got, strings.Join(wantWarnings, "\n"))
	}
	wantFiles := []string{filepath.Join(dir, "key.txt"), filepath.Join(dir, "missing-token")}
	if got := strings.Join(s.SourceFiles(), ","); got != strings.Join(wantFiles, ",") {
		t.Errorf("got source files %s, want %s", got, strings.Join(wantFiles, ","))
	}
}
