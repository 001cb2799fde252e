package e2e

import (
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
