package audit_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/secret"
)

var chainKey = secret.FromString(strings.Repeat("k", 32))

// chainedLog writes n records, with a reload event as the third line, to
// a chained log continuing from prev, and returns its lines.
func chainedLog(t *testing.T, n int, prev string) []string {
	t.Helper()
	var buf bytes.Buffer
	l := audit.NewChained(&buf, chainKey, prev)
	for i := range n {
		if i == 2 {
			if err := l.Event(at, "reload", slog.Bool("ok", true)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := l.Log(&audit.Record{Time: at, RequestID: "r" + string(rune('a'+i)), Agent: "billing", Secrets: []string{"STRIPE"}}); err != nil {
			t.Fatal(err)
		}
	}
	return scanLines(buf.Bytes())
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hashField(t *testing.T, line string) string {
	t.Helper()
	var m struct{ Prev, Hash string }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	return m.Hash
}

func TestChainedLineFormat(t *testing.T) {
	lines := chainedLog(t, 4, "")
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		// The documented definition: HMAC-SHA256 of the line without its
		// last member ,"hash":"...".
		h := m["hash"].(string)
		cut := strings.TrimSuffix(line, `,"hash":"`+h+`"}`) + "}"
		mac := hmac.New(sha256.New, []byte(chainKey.Reveal()))
		mac.Write([]byte(cut))
		if want := hex.EncodeToString(mac.Sum(nil)); h != want {
			t.Errorf("line %d: hash is not HMAC-SHA256 of the line without it", i+1)
		}
		wantPrev := ""
		if i > 0 {
			wantPrev = hashField(t, lines[i-1])
		}
		if m["prev"] != wantPrev {
			t.Errorf("line %d: got prev %v, want the previous line's hash %q", i+1, m["prev"], wantPrev)
		}
	}
	if !strings.Contains(lines[2], `"event":"reload"`) {
		t.Errorf("line 3 is not the reload event: %s", lines[2])
	}
}

func TestVerifyTampering(t *testing.T) {
	orig := chainedLog(t, 6, "")
	edit := func(i int, from, to string) func([]string) []string {
		return func(l []string) []string { l[i] = strings.Replace(l[i], from, to, 1); return l }
	}
	forged := func() string {
		// A line sealed with another key, as someone without the key
		// would have to write it.
		var buf bytes.Buffer
		audit.NewChained(&buf, secret.FromString(strings.Repeat("x", 32)), hashField(t, orig[1])).Log(&audit.Record{Time: at, RequestID: "forged"})
		return strings.TrimSuffix(buf.String(), "\n")
	}
	tests := []struct {
		name     string
		tamper   func([]string) []string
		wantLine int
		wantKind string
	}{
		{"whole", func(l []string) []string { return l }, 0, ""},
		{"edit a record", edit(3, `"agent":"billing"`, `"agent":"billinh"`), 4, audit.BreakChanged},
		{"edit an event", edit(2, `"ok":true`, `"ok":false`), 3, audit.BreakChanged},
		{"edit the hash", edit(1, `"hash":"`, `"hash":"0`), 2, audit.BreakChanged},
		{"drop the chain members", func(l []string) []string {
			i := strings.Index(l[4], `,"prev"`)
			l[4] = l[4][:i] + "}"
			return l
		}, 5, audit.BreakChanged},
		{"delete a line", func(l []string) []string { return append(l[:3:3], l[4:]...) }, 4, audit.BreakRemoved},
		{"delete two lines", func(l []string) []string { return append(l[:1:1], l[3:]...) }, 2, audit.BreakRemoved},
		{"swap two lines", func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, 3, audit.BreakReordered},
		{"move a line to the end", func(l []string) []string { return append(append(l[:1:1], l[2:]...), l[1]) }, 2, audit.BreakReordered},
		{"insert a copy", func(l []string) []string { return append(l[:4:4], append([]string{l[1]}, l[4:]...)...) }, 5, audit.BreakReordered},
		{"insert a forged line", func(l []string) []string { return append(l[:2:2], append([]string{forged()}, l[2:]...)...) }, 3, audit.BreakChanged},
		{"cut the last line short", func(l []string) []string { l[5] = l[5][:len(l[5])-10]; return l }, 6, audit.BreakChanged},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeLines(t, tc.tamper(append([]string(nil), orig...)))
			res, err := audit.Verify(chainKey, []string{path})
			var brk *audit.Break
			switch {
			case tc.wantLine == 0 && err != nil:
				t.Fatalf("got %v, want the chain whole", err)
			case tc.wantLine == 0:
				if res.Lines != 6 || res.First != "" || res.Last != hashField(t, orig[5]) {
					t.Errorf("got %+v, want 6 lines from the start of the chain to the last line's hash", res)
				}
			case !errors.As(err, &brk):
				t.Fatalf("got %v, want a *Break", err)
			case brk.Line != tc.wantLine || brk.Kind != tc.wantKind || brk.File != path:
				t.Errorf("got %s (%s), want line %d %s", brk, brk.Kind, tc.wantLine, tc.wantKind)
			case !strings.HasPrefix(brk.Error(), path+":"):
				t.Errorf("got %q, want FILE:LINE: first", brk)
			}
		})
	}
}

func TestVerifyWrongKeyOrPlainLog(t *testing.T) {
	path := writeLines(t, chainedLog(t, 3, ""))
	var brk *audit.Break
	if _, err := audit.Verify(secret.FromString(strings.Repeat("x", 32)), []string{path}); !errors.As(err, &brk) || brk.Line != 1 {
		t.Errorf("another key: got %v, want a break at line 1", err)
	}
	var buf bytes.Buffer
	audit.New(&buf).Log(&audit.Record{Time: at, RequestID: "plain"})
	plain := writeLines(t, scanLines(buf.Bytes()))
	if _, err := audit.Verify(chainKey, []string{plain}); !errors.As(err, &brk) || brk.Line != 1 || !strings.Contains(brk.Message, `no "hash"`) {
		t.Errorf("unchained log: got %v, want line 1 without a hash", err)
	}
	lines := chainedLog(t, 2, "")
	for _, end := range []string{"", "\r"} {
		os.WriteFile(path, []byte(lines[0]+"\n"+lines[1]+end), 0o600)
		if _, err := audit.Verify(chainKey, []string{path}); !errors.As(err, &brk) || brk.Line != 2 || !strings.Contains(brk.Message, "no newline") {
			t.Errorf("last newline replaced by %q: got %v, want line 2 named", end, err)
		}
	}
}

// TestVerifyAcrossFiles: a chain continues from one file to the next, and
// a cut at the end of a file shows in the next one; at the end of the
// last file it cannot show.
func TestVerifyAcrossFiles(t *testing.T) {
	first := chainedLog(t, 4, "")
	second := chainedLog(t, 3, hashField(t, first[3]))
	f1, f2 := writeLines(t, first), writeLines(t, second)
	res, err := audit.Verify(chainKey, []string{f1, f2})
	if err != nil || res.Files != 2 || res.Lines != 7 || res.Last != hashField(t, second[2]) {
		t.Fatalf("got %+v %v, want 2 whole files of 7 lines", res, err)
	}
	if res, err := audit.Verify(chainKey, []string{f2}); err != nil || res.First != hashField(t, first[3]) {
		t.Errorf("the second file alone: got %+v %v, want it whole, continuing the first", res, err)
	}
	var brk *audit.Break
	if _, err := audit.Verify(chainKey, []string{f2, f1}); !errors.As(err, &brk) || brk.File != f1 || brk.Line != 1 {
		t.Errorf("files in the wrong order: got %v, want a break at %s:1", err, f1)
	}
	cut := writeLines(t, first[:3])
	if _, err := audit.Verify(chainKey, []string{cut, f2}); !errors.As(err, &brk) || brk.File != f2 || brk.Line != 1 || brk.Kind != audit.BreakRemoved {
		t.Errorf("end of the first file cut: got %v, want %s:1 removed", err, f2)
	}
	// What a cut at the very end cannot show: the shorter chain is whole.
	if res, err := audit.Verify(chainKey, []string{f1, writeLines(t, second[:2])}); err != nil || res.Last == hashField(t, second[2]) {
		t.Errorf("end of the last file cut: got %+v %v, want a whole chain with an earlier last hash", res, err)
	}
	restarted := writeLines(t, chainedLog(t, 2, ""))
	if _, err := audit.Verify(chainKey, []string{f1, restarted}); !errors.As(err, &brk) || brk.Kind != audit.BreakRestarted || brk.Line != 1 {
		t.Errorf("a new chain after the first file: got %v, want restarted at line 1", err)
	}
}

// FuzzVerify seals records with arbitrary fields into a chained log and
// checks that the log verifies, that any one changed byte is found (at
// the line that holds it, or the one after a line it split or merged),
// and that Verify never panics on what the change leaves.
func FuzzVerify(f *testing.F) {
	f.Add("billing", "/v1/charges", "reload", uint16(10), byte('x'))
	f.Add("a\"b\n", "/\u2028\xff", "", uint16(300), byte('\n'))
	f.Add("", "", "x", uint16(0), byte('}'))
	f.Fuzz(func(t *testing.T, agent, path, event string, at uint16, b byte) {
		var buf bytes.Buffer
		l := audit.NewChained(&buf, chainKey, "")
		l.Log(&audit.Record{Time: time.Unix(1, 0), Agent: agent, Path: path})
		if event != "" {
			l.Event(time.Unix(2, 0), event, slog.String("file", path))
		}
		l.Log(&audit.Record{Time: time.Unix(3, 0), Agent: path, Path: agent})
		log := buf.Bytes()
		dir := t.TempDir()
		name := filepath.Join(dir, "audit.log")
		os.WriteFile(name, log, 0o600)
		if _, err := audit.Verify(chainKey, []string{name}); err != nil {
			t.Fatalf("a sealed log does not verify: %v", err)
		}
		i := int(at) % len(log)
		if log[i] == b {
			return
		}
		tampered := bytes.Clone(log)
		tampered[i] = b
		os.WriteFile(name, tampered, 0o600)
		var brk *audit.Break
		if _, err := audit.Verify(chainKey, []string{name}); !errors.As(err, &brk) {
			t.Fatalf("byte %d changed to %q: got %v, want a break", i, b, err)
		}
		if line := 1 + bytes.Count(log[:i], []byte("\n")); brk.Line != line && brk.Line != line+1 {
			t.Fatalf("byte %d (line %d) changed: break at line %d", i, line, brk.Line)
		}
	})
}
