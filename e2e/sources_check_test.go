package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSources runs keyhole check on every new source syntax: a
// malformed one is an error naming file, line and field; one that cannot
// be read from here is a warning and the file is valid.
func TestCheckSources(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`secrets:
  E:
    source: "exec:"
    hosts: [a.example]
  V:
    source: vault:secret/data/x
    hosts: [a.example]
  S:
    source: store:not-a-name
    hosts: [a.example]
vault:
  address: http://vault.internal:8200
  auth: {token: env:VAULT_TOKEN}
`), 0o600)
	_, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + filepath.Join(dir, "state")}, "check", bad)
	if code != 1 {
		t.Fatalf("malformed sources: got exit %d, want 1", code)
	}
	for _, want := range []string{
		bad + ":3: secrets.E.source: exec:",
		bad + ":6: secrets.V.source: vault: wants PATH#FIELD",
		bad + ":9: secrets.S.source: store:",
		bad + ":12: vault.address: must be an https:// URL",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check lacks %q:\n%s", want, stderr)
		}
	}

	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(`secrets:
  E:
    source: exec:%s/no-such-program
    hosts: [a.example]
  V:
    source: vault:secret/data/x#y
    hosts: [a.example]
  S:
    source: store:NOT_STORED
    hosts: [a.example]
vault:
  address: https://%s
  auth: {token: env:KEYHOLE_E2E_UNSET}
`, dir, closedPort(t))), 0o600)
	state := filepath.Join(dir, "state")
	stdout, stderr, code := runKeyhole(t, []string{"KEYHOLE_STATE_DIR=" + state}, "check", good)
	if code != 0 {
		t.Fatalf("unreadable sources: got exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "3 secrets") || !strings.Contains(stdout, "warnings") {
		t.Errorf("summary: got %q", stdout)
	}
	for _, want := range []string{
		"warning: " + good + ":3: secrets.E.source: exec:" + dir + "/no-such-program: the program was not found",
		"warning: " + good + ":6: secrets.V.source: vault:secret/data/x#y: the Vault token could not be read",
		"warning: " + good + ":9: secrets.S.source: store:NOT_STORED: open store",
		"warning: " + good + ":13: vault.auth.token: env:KEYHOLE_E2E_UNSET: the variable is not set",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Error("keyhole check created the state dir")
	}
}
