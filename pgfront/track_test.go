package pgfront

import (
	"testing"
	"time"
)

func TestTrackerExtended(t *testing.T) {
	now := time.Now()
	var tr tracker
	// Parse, Bind, Execute, Sync; then a pipeline whose Bind fails.
	tr.push(stepParse, "SELECT $1", now)
	tr.push(stepBind, "", now)
	tr.push(stepExecute, "SELECT $1", now)
	tr.push(stepSync, "", now)
	tr.push(stepParse, "INSERT INTO t VALUES ($1)", now)
	tr.push(stepBind, "", now)
	tr.push(stepExecute, "INSERT INTO t VALUES ($1)", now)
	tr.push(stepSync, "", now)
	tr.answered(stepParse)
	tr.answered(stepBind)
	o, ok := tr.complete("SELECT 1", now)
	if !ok || o.query != "SELECT $1" || o.rows != 1 || o.status != "ok" {
		t.Fatalf("got %+v %v", o, ok)
	}
	tr.ready()
	tr.answered(stepParse)
	o, ok = tr.fail("22P02", now)
	if !ok || o.status != "22P02" {
		t.Fatalf("got %+v %v", o, ok)
	}
	tr.ready()
	if tr.busy() {
		t.Errorf("still busy: %+v", tr.q)
	}
}

func TestTrackerSimple(t *testing.T) {
	now := time.Now()
	var tr tracker
	tr.push(stepQuery, "SELECT 1; SELECT 2; BAD", now)
	for _, tag := range []string{"SELECT 1", "SELECT 1"} {
		if o, ok := tr.complete(tag, now); !ok || o.rows != 1 {
			t.Fatalf("got %+v %v", o, ok)
		}
	}
	if o, ok := tr.fail("42601", now); !ok || o.query != "SELECT 1; SELECT 2; BAD" {
		t.Fatalf("got %+v %v", o, ok)
	}
	tr.ready()
	if tr.busy() {
		t.Error("still busy")
	}
	if _, ok := tr.complete("SELECT 1", now); ok {
		t.Error("a completion with nothing pending was attributed")
	}
}

func TestTagRows(t *testing.T) {
	for tag, want := range map[string]int64{"SELECT 5": 5, "INSERT 0 3": 3, "BEGIN": 0, "COPY 10": 10, "": 0, "UPDATE x": 0} {
		if got := tagRows(tag); got != want {
			t.Errorf("%q: got %d, want %d", tag, got, want)
		}
	}
}
