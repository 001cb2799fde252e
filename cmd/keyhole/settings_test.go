package main

import (
	"testing"

	"github.com/caarlos0/env/v11"
)

// TestEverySettingHasHelp fails when a setting is added without a line of
// -h help, and when help names a setting that no longer exists.
func TestEverySettingHasHelp(t *testing.T) {
	params, err := env.GetFieldParams(&settings{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range params {
		seen[p.Key] = true
		if settingHelp[p.Key] == "" {
			t.Errorf("%s has no help text", p.Key)
		}
	}
	for key := range settingHelp {
		if !seen[key] {
			t.Errorf("help for %s, which is not a setting", key)
		}
	}
}

func TestFlagName(t *testing.T) {
	for key, want := range map[string]string{
		"KEYHOLE_LISTEN":           "listen",
		"KEYHOLE_AUDIT_LOG":        "audit-log",
		"KEYHOLE_UPSTREAM_CA_FILE": "upstream-ca-file",
	} {
		if got := flagName(key); got != want {
			t.Errorf("flagName(%s): got %s, want %s", key, got, want)
		}
	}
}
