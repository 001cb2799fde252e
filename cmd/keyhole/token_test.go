package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyhole/tokens"
)

// tokenEnv gives the token commands a fresh state dir and a rules file
// with one agent, billing, named by KEYHOLE_RULES; it runs in a directory
// without ./keyhole.yaml.
func tokenEnv(t *testing.T) (stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("agents:\n  billing:\n    token: env:TOKEN_TEST_BILLING\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TOKEN_TEST_BILLING", "static-token")
	t.Setenv("KEYHOLE_STATE_DIR", stateDir)
	t.Setenv("KEYHOLE_RULES", rulesFile)
	t.Chdir(t.TempDir())
	return stateDir
}

// runToken runs "keyhole token ARGS" and returns its stdout and stderr.
func runToken(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := tokenCommand(args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestTokenMintRules(t *testing.T) {
	tokenEnv(t)
	if _, _, err := runToken(t, "mint", "--agent", "billing", "--ttl", "1m"); err != nil {
		t.Fatalf("mint with KEYHOLE_RULES: %v", err)
	}
	os.Unsetenv("KEYHOLE_RULES")
	_, _, err := runToken(t, "mint", "--agent", "billing", "--ttl", "1m")
	if err == nil {
		t.Fatal("mint without a rules file succeeded")
	}
	for _, want := range []string{"./keyhole.yaml", "--rules", "KEYHOLE_RULES"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestTokenRevokeKnownIDsOnly(t *testing.T) {
	stateDir := tokenEnv(t)
	tok, _, err := runToken(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", "task-42")
	if err != nil {
		t.Fatal(err)
	}
	tok = strings.TrimSpace(tok)
	child, _, err := runToken(t, "attenuate", tok, "--ttl", "1m")
	if err != nil {
		t.Fatal(err)
	}
	childInfo, err := tokens.Inspect(strings.TrimSpace(child))
	if err != nil {
		t.Fatal(err)
	}
	revoked := func() string {
		b, _ := os.ReadFile(filepath.Join(stateDir, tokens.RevokedFile))
		return string(b)
	}
	t.Run("a typo is refused", func(t *testing.T) {
		_, _, err := runToken(t, "revoke", "task-24")
		if err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), `"task-24"`) {
			t.Fatalf("got %v, want a refusal naming the id and --force", err)
		}
		if strings.Contains(revoked(), "task-24") {
			t.Error("the refused id was revoked")
		}
	})
	t.Run("a minted id says what it revoked", func(t *testing.T) {
		_, stderr, err := runToken(t, "revoke", "task-42")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"revoked: task-42", "agent billing", "expires 20"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr %q lacks %q", stderr, want)
			}
		}
	})
	t.Run("an attenuated id is known too", func(t *testing.T) {
		if _, _, err := runToken(t, "revoke", childInfo.ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a whole token needs no record", func(t *testing.T) {
		os.Remove(filepath.Join(stateDir, tokens.MintedFile))
		_, stderr, err := runToken(t, "revoke", tok)
		if err != nil || !strings.Contains(stderr, "agent billing") {
			t.Fatalf("got %v (%s), want the token revoked and described", err, stderr)
		}
	})
	t.Run("--force revokes an unknown id", func(t *testing.T) {
		_, stderr, err := runToken(t, "revoke", "--force", "task-24")
		if err != nil || !strings.Contains(stderr, "revoked: task-24") || !strings.Contains(revoked(), "task-24 ") {
			t.Fatalf("got %v (%s), want task-24 revoked", err, stderr)
		}
	})
	if strings.Contains(mustRead(t, filepath.Join(stateDir, tokens.RevokedFile)), tok) {
		t.Error("the revocation list holds a token")
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
