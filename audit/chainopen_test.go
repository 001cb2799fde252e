package audit_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyhole/audit"
)

// chainedRun opens a chained log at path with stateDir, as keyhole serve
// does, writes n records and, when rotate is set, moves the log to
// rotate and reopens it halfway (as logrotate and SIGHUP do), then closes.
func chainedRun(t *testing.T, path, stateDir string, n int, rotate string) {
	t.Helper()
	l, f, err := audit.OpenChained(path, nil, stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if rotate != "" && i == n/2 {
			if err := os.Rename(path, rotate); err != nil {
				t.Fatal(err)
			}
			if err := f.Reopen(); err != nil {
				t.Fatal(err)
			}
			if err := l.Event(at, "reload", slog.Bool("ok", true)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Log(&audit.Record{Time: at, RequestID: "r"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func verifyFiles(t *testing.T, stateDir string, files ...string) (audit.Verified, error) {
	t.Helper()
	key, err := audit.LoadKey(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return audit.Verify(key, files)
}

func TestOpenChainedKey(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	chainedRun(t, filepath.Join(t.TempDir(), "audit.log"), stateDir, 1, "")
	for _, name := range []string{audit.KeyFile, audit.ChainFile} {
		fi, err := os.Stat(filepath.Join(stateDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: got mode %04o, want 0600", name, perm)
		}
	}
}

func TestChainAcrossRotationAndRestarts(t *testing.T) {
	dir := t.TempDir()
	stateDir, path := filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")
	chainedRun(t, path, stateDir, 6, path+".2") // rotated while running
	chainedRun(t, path, stateDir, 3, "")        // restarted on the same file
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	chainedRun(t, path, stateDir, 2, "") // restarted after a rotation while stopped
	res, err := verifyFiles(t, stateDir, path+".2", path+".1", path)
	if err != nil {
		t.Fatalf("got %v, want the chain whole across rotations and restarts", err)
	}
	if res.Lines != 12 || res.First != "" {
		t.Errorf("got %+v, want 12 lines from the start of the chain", res)
	}
	first, _ := os.ReadFile(path + ".1")
	rotated, _ := os.ReadFile(path + ".2")
	lastOfRotated := scanLines(rotated)[len(scanLines(rotated))-1]
	if hashField(t, lastOfRotated) == "" || !strings.Contains(scanLines(first)[0], `"prev":"`+hashField(t, lastOfRotated)+`"`) {
		t.Error("the first line after a rotation does not carry the last hash of the rotated file")
	}
}

// TestChainShowsCutWhileStopped: lines removed from the end of the log
// while keyhole was stopped show at the first line it writes after it
// starts again, because it continues from the hash it saved, not from
// what the file now ends with.
func TestChainShowsCutWhileStopped(t *testing.T) {
	dir := t.TempDir()
	stateDir, path := filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")
	chainedRun(t, path, stateDir, 5, "")
	data, _ := os.ReadFile(path)
	lines := scanLines(data)
	if err := os.WriteFile(path, []byte(strings.Join(lines[:3], "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFiles(t, stateDir, path); err != nil {
		t.Fatalf("before the restart: got %v; a cut at the very end is not visible yet", err)
	}
	chainedRun(t, path, stateDir, 1, "")
	var brk *audit.Break
	if _, err := verifyFiles(t, stateDir, path); !errors.As(err, &brk) || brk.Line != 4 || brk.Kind != audit.BreakRemoved {
		t.Errorf("got %v, want line 4 to show lines removed before it", err)
	}
}

// TestChainAfterCrash: keyhole stopped after a batch reached the log but
// before it saved the batch's last hash; the log is ahead of the state
// dir, and the chain continues from the log.
func TestChainAfterCrash(t *testing.T) {
	dir := t.TempDir()
	stateDir, path := filepath.Join(dir, "state"), filepath.Join(dir, "audit.log")
	chainedRun(t, path, stateDir, 2, "")
	saved, err := os.ReadFile(filepath.Join(stateDir, audit.ChainFile))
	if err != nil {
		t.Fatal(err)
	}
	chainedRun(t, path, stateDir, 2, "")
	if err := os.WriteFile(filepath.Join(stateDir, audit.ChainFile), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	chainedRun(t, path, stateDir, 2, "")
	if _, err := verifyFiles(t, stateDir, path); err != nil {
		t.Errorf("got %v, want the chain whole", err)
	}
}

func TestOpenChainedStdout(t *testing.T) {
	stateDir := t.TempDir()
	var out strings.Builder
	for range 2 {
		l, f, err := audit.OpenChained("-", &out, stateDir)
		if err != nil {
			t.Fatal(err)
		}
		l.Log(&audit.Record{Time: at, RequestID: "r"})
		f.Close()
	}
	path := writeLines(t, scanLines([]byte(out.String())))
	if res, err := verifyFiles(t, stateDir, path); err != nil || res.Lines != 2 {
		t.Errorf("two runs to stdout: got %+v %v, want one whole chain of 2 lines", res, err)
	}
}
