package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartTrace(t *testing.T) {
	stop, err := startTrace("")
	if err != nil {
		t.Fatalf("unset: got %v, want nothing done", err)
	}
	stop()

	path := filepath.Join(t.TempDir(), "trace.out")
	stop, err = startTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "go 1.") {
		t.Errorf("KEYHOLE_TRACE file does not start with an execution trace's header")
	}

	if _, err := startTrace(filepath.Join(t.TempDir(), "missing", "trace.out")); err == nil || !strings.Contains(err.Error(), "KEYHOLE_TRACE") {
		t.Errorf("unwritable file: got %v, want an error naming KEYHOLE_TRACE", err)
	}
}
