package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPostgresProtocol drives the relay with pgx: the extended protocol
// with parameters (never audited), prepared statements, COPY both ways,
// LISTEN/NOTIFY, a cancel request and a large streamed result.
func TestPostgresProtocol(t *testing.T) {
	w := newPGWorld(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.dsn("analyst", analystToken, "DB_PROD", "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	t.Run("extended protocol with parameters", func(t *testing.T) {
		const marker = "param-value-NEVER-AUDITED-77"
		var name string
		if err := conn.QueryRow(ctx, "SELECT name FROM users WHERE id = $1 AND $2::text <> ''", 7, marker).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != "user 7" {
			t.Fatalf("got %q", name)
		}
		rec := w.auditPG(t, func(r map[string]any) bool {
			return r["query"] == "SELECT name FROM users WHERE id = $1 AND $2::text <> ''"
		})
		if rec["rows"] != float64(1) || rec["status"] != "ok" {
			t.Errorf("audit: got %v", rec)
		}
		if strings.Contains(w.k.stdout.String(), marker) {
			t.Error("a Bind parameter value reached the audit log")
		}
	})
	t.Run("prepared statement, many executions", func(t *testing.T) {
		if _, err := conn.Prepare(ctx, "byid", "SELECT name FROM users WHERE id = $1"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 20; i++ {
			var name string
			if err := conn.QueryRow(ctx, "byid", i).Scan(&name); err != nil || name != fmt.Sprintf("user %d", i) {
				t.Fatalf("execution %d: got %q, %v", i, name, err)
			}
		}
	})
	t.Run("error in a pipeline", func(t *testing.T) {
		b := &pgx.Batch{}
		b.Queue("SELECT 1")
		b.Queue("SELECT 1/0")
		b.Queue("SELECT 3")
		err := conn.SendBatch(ctx, b).Close()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatalf("got %v, want 22012", err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT 42").Scan(&n); err != nil || n != 42 {
			t.Fatalf("after the failed batch: %d, %v", n, err)
		}
		w.auditPG(t, func(r map[string]any) bool { return r["status"] == "22012" && r["query"] == "SELECT 1/0" })
	})
	t.Run("COPY in and out", func(t *testing.T) {
		pc := conn.PgConn()
		if _, err := pc.Exec(ctx, "CREATE TEMP TABLE copied (id int, body text)").ReadAll(); err != nil {
			t.Fatal(err)
		}
		var in bytes.Buffer
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&in, "%d\tline %d\n", i, i)
		}
		tag, err := pc.CopyFrom(ctx, &in, "COPY copied FROM STDIN")
		if err != nil || tag.RowsAffected() != 5000 {
			t.Fatalf("copy in: %v, %v", tag, err)
		}
		var out bytes.Buffer
		tag, err = pc.CopyTo(ctx, &out, "COPY (SELECT * FROM copied ORDER BY id) TO STDOUT")
		if err != nil || tag.RowsAffected() != 5000 || !strings.HasPrefix(out.String(), "0\tline 0\n") {
			t.Fatalf("copy out: %v, %v, %d bytes", tag, err, out.Len())
		}
		w.auditPG(t, func(r map[string]any) bool {
			return r["query"] == "COPY copied FROM STDIN" && r["rows"] == float64(5000)
		})
	})
	t.Run("LISTEN and NOTIFY", func(t *testing.T) {
		l := w.mustConnect(t, "analyst", analystToken, "DB_PROD")
		if _, err := query(t, l, "LISTEN jobs"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_notify('jobs', 'job-1')"); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := l.WaitForNotification(wctx); err != nil {
			t.Fatalf("no notification: %v", err)
		}
	})
	t.Run("cancel request", func(t *testing.T) {
		c := w.mustConnect(t, "analyst", analystToken, "DB_PROD")
		done := make(chan error, 1)
		start := time.Now()
		go func() { _, err := query(t, c, "SELECT pg_sleep(60)"); done <- err }()
		time.Sleep(500 * time.Millisecond)
		var err error
		for i := 0; i < 20; i++ {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			err = c.CancelRequest(cctx)
			ccancel()
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err = <-done:
			case <-time.After(time.Second):
				continue // the cancel came before the query started
			}
			break
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("got %v, want 57014 query_canceled", err)
		}
		if time.Since(start) > 30*time.Second {
			t.Errorf("the cancel took %s", time.Since(start))
		}
	})
	t.Run("large result streamed", func(t *testing.T) {
		// keyhole's memory stays far below the 50 MB result: it holds a
		// message at a time, never the result.
		before := w.k.stats(t).RSS
		var peak atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				if rss := w.k.stats(t).RSS; rss > peak.Load() {
					peak.Store(rss)
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		defer func() {
			close(stop)
			<-sampled
			if grew := peak.Load() - before; grew > 32<<20 {
				t.Errorf("keyhole grew by %d MiB while relaying a 50 MB result", grew>>20)
			}
		}()
		rows, err := conn.Query(ctx, "SELECT id, payload FROM big")
		if err != nil {
			t.Fatal(err)
		}
		n, size := 0, 0
		for rows.Next() {
			v := rows.RawValues()
			n++
			size += len(v[1])
		}
		if rows.Err() != nil || n != 50000 || size != 50000*1000 {
			t.Fatalf("got %d rows, %d bytes, %v", n, size, rows.Err())
		}
	})
}
