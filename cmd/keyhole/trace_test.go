package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStartTrace(t *testing.T) {
	t.Setenv("KEYHOLE_TRACE", "")
	stop, err := startTrace()
	if err != nil {
		t.Fatalf("unset: got %v, want nothing done", err)
	}
	stop()

	path := filepath.Join(t.TempDir(), "trace.out")
	t.Setenv("KEYHOLE_TRACE", path)
	stop, err = startTrace()
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

	t.Setenv("KEYHOLE_TRACE", filepath.Join(t.TempDir(), "missing", "trace.out"))
	if _, err := startTrace(); err == nil || !strings.Contains(err.Error(), "KEYHOLE_TRACE") {
		t.Errorf("unwritable file: got %v, want an error naming KEYHOLE_TRACE", err)
	}
}
