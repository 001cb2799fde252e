package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestPostgresOperate: a reload applies new database rules to new sessions
// and to the next statement of open ones; `keyhole audit tail` shows the
// statements readably; shutdown ends sessions and keyhole exits in time.
func TestPostgresOperate(t *testing.T) {
	w := newPGWorld(t, "")
	c := w.mustConnect(t, "analyst", analystToken, "DB_PROD")
	if _, err := query(t, c, "SELECT 'before reload'"); err != nil {
		t.Fatal(err)
	}
	// Take DB_PROD away from analyst.
	body := strings.Replace(readFile(t, w.k.Rules), "databases: [DB_PROD, DB_RO, DB_TMP]", "databases: [DB_RO]", 1)
	writeRules(t, w.k, body)
	w.k.WaitAudit(t, func(r map[string]any) bool { return r["event"] == "reload" && r["ok"] == true })
	_, err := query(t, c, "SELECT 'after reload'")
	if pe := pgError(t, err); pe.Code != "42501" || !strings.Contains(pe.Detail, "agent_not_allowed") {
		t.Fatalf("open session after the reload: got %s %s, want 42501 agent_not_allowed", pe.Code, pe.Detail)
	}
	_, err = w.connect(t, "analyst", analystToken, "DB_PROD")
	if pe := pgError(t, err); pe.Code != "42501" {
		t.Fatalf("new session after the reload: got %s, want 42501", pe.Code)
	}
	ro := w.mustConnect(t, "analyst", analystToken, "DB_RO")
	if _, err := query(t, ro, "SELECT 'still allowed'"); err != nil {
		t.Fatal(err)
	}

	// audit tail shows the statements and the refusals (once they have
	// come through keyhole's stdout pipe).
	w.auditPG(t, func(r map[string]any) bool {
		return r["reason"] == "agent_not_allowed" && r["query"] == "SELECT 'after reload'"
	})
	w.auditPG(t, func(r map[string]any) bool { return r["query"] == "SELECT 'still allowed'" })
	logPath := w.k.Rules + ".audit"
	log := w.k.stdout.String()
	log = log[:strings.LastIndexByte(log, '\n')+1] // whole lines only: keyhole may be writing one
	if err := writeFileString(logPath, log); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runKeyhole(t, nil, "audit", "tail", "--agent", "analyst", logPath)
	if code != 0 {
		t.Fatalf("audit tail: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"allow  ok     postgres DB_PROD", "SELECT 'before reload'", "deny   42501  postgres DB_PROD", "agent_not_allowed"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit tail lacks %q:\n%s", want, out)
		}
	}

	// Shutdown: a statement in flight finishes, the idle session is ended
	// at once, and keyhole exits.
	busy := w.mustConnect(t, "analyst", analystToken, "DB_RO")
	result := make(chan error, 1)
	go func() {
		rows, err := query(t, busy, "SELECT pg_sleep(2), 'finished'")
		if err == nil && (len(rows) != 1 || rows[0][1] != "finished") {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	w.k.Stop()
	if err := <-result; err != nil {
		t.Errorf("the statement in flight at shutdown: %v", err)
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ro.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
		t.Error("a session survived the shutdown")
	}
}
