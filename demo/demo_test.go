package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"keyhole/rules"
)

// TestRulesAreValid: the embedded rules, filled in, pass keyhole's strict
// decoding, pin both demo hosts and refuse every other host.
func TestRulesAreValid(t *testing.T) {
	var b bytes.Buffer
	if err := rulesTemplate.Execute(&b, struct{ Upstream string }{"127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse("keyhole.yaml", b.Bytes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := "keyhole.yaml: ok: 1 secret, 0 agents, egress default deny (1 allow, 0 deny), 2 pins"
	if got := set.Summary(); !strings.HasPrefix(got, want) {
		t.Errorf("summary: got %q, want it to start %q", got, want)
	}
}

func TestRunNeedsABinary(t *testing.T) {
	if err := Run(context.Background(), Options{}, &bytes.Buffer{}); err == nil {
		t.Error("Run without Keyhole: got nil, want an error")
	}
}
