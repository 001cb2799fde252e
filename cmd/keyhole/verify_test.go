package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyhole/audit"
)

func TestAuditVerify(t *testing.T) {
	auditEnv(t)
	stateDir := os.Getenv("KEYHOLE_STATE_DIR")
	path := filepath.Join(t.TempDir(), "audit.log")
	l, f, err := audit.OpenChained(path, nil, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range auditRecords() {
		l.Log(r)
	}
	f.Close()
	verify := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := runAudit(context.Background(), append([]string{"verify"}, args...), &stdout, &stderr)
		return stdout.String(), err
	}
	out, err := verify(path)
	if err != nil || !strings.Contains(out, "ok: 7 lines in 1 files") || !strings.Contains(out, "from the start of the chain") {
		t.Fatalf("whole log: got %v\n%s", err, out)
	}
	t.Setenv("KEYHOLE_AUDIT_LOG", path)
	if _, err := verify(); err != nil {
		t.Errorf("KEYHOLE_AUDIT_LOG: got %v, want it verified", err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	os.WriteFile(path, []byte(strings.Join(append(lines[:2:2], lines[3:]...), "")), 0o600)
	_, err = verify(path)
	if err == nil || !strings.Contains(err.Error(), path+":3: one or more lines are missing") {
		t.Errorf("a line removed: got %v, want %s:3 named", err, path)
	}
	t.Setenv("KEYHOLE_STATE_DIR", t.TempDir())
	if _, err := verify(path); err == nil || !strings.Contains(err.Error(), "KEYHOLE_STATE_DIR") {
		t.Errorf("no key: got %v, want a hint to set KEYHOLE_STATE_DIR", err)
	}
}
