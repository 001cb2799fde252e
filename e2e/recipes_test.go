package e2e

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRecipesPassCheck: every recipe in examples/recipes (the README's
// Recipes section) is accepted by keyhole check, so none can rot. The
// variables the recipes read are unset here: that is a warning, not an
// error.
func TestRecipesPassCheck(t *testing.T) {
	files, err := filepath.Glob("../examples/recipes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
	}
	want := []string{"anthropic", "git", "github", "npm", "openai", "pypi"}
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("examples/recipes/%s.yaml is missing", n)
		}
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			stdout, stderr, code := runKeyhole(t, nil, "check", f)
			if code != 0 || !strings.Contains(stdout, ": ok: ") {
				t.Errorf("keyhole check %s: exit %d\nstdout: %s\nstderr: %s", f, code, stdout, stderr)
			}
			if strings.Contains(stderr, "error") {
				t.Errorf("keyhole check %s: stderr has more than warnings: %s", f, stderr)
			}
		})
	}
}

// TestExampleRulesWarnings: the README's quick start says the example
// rules print two warnings when STRIPE_SECRET_KEY and GITHUB_TOKEN are
// unset, and still load.
func TestExampleRulesWarnings(t *testing.T) {
	var env []string
	for _, kv := range baseEnv() {
		if !strings.HasPrefix(kv, "STRIPE_SECRET_KEY=") && !strings.HasPrefix(kv, "GITHUB_TOKEN=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(binary, "check", "../examples/keyhole.yaml")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("keyhole check examples/keyhole.yaml: %v\n%s", err, stderr.String())
	}
	warnings := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(warnings) != 2 || !strings.Contains(warnings[0], "env:STRIPE_SECRET_KEY: the variable is not set") ||
		!strings.Contains(warnings[1], "env:GITHUB_TOKEN: the variable is not set") {
		t.Errorf("warnings: got %q, want the two the README names", warnings)
	}
	if !strings.Contains(stdout.String(), ": ok: 3 secrets") {
		t.Errorf("summary: got %q", stdout.String())
	}
}
