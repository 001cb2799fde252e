package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pgbenchInit creates pgbench's tables in the app database once.
func pgbenchInit(t *testing.T, pg *pgServer) {
	t.Helper()
	pgbenchOnce.Do(func() {
		out, err := runClient(t, []string{"PGPASSWORD=" + pgAppPassword}, "pgbench", "-i", "-q", "-s", "1",
			fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=app", pg.port, pgAppUser))
		if err != nil {
			pgbenchErr = fmt.Errorf("pgbench -i: %v\n%s", err, out)
		}
	})
	if pgbenchErr != nil {
		t.Fatal(pgbenchErr)
	}
}

var (
	pgbenchOnce sync.Once
	pgbenchErr  error
)

var failedTx = regexp.MustCompile(`number of failed transactions: (\d+)`)
var processedTx = regexp.MustCompile(`number of transactions actually processed: (\d+)`)

// TestPostgresLoad: 200 concurrent sessions of pgbench's select-only
// transactions through keyhole, with no error.
func TestPostgresLoad(t *testing.T) {
	need(t, "pgbench", "--version")
	w := newPGWorld(t, "")
	pgbenchInit(t, w.pg)
	host, port, _ := strings.Cut(w.addr, ":")
	out, err := runClient(t, []string{"PGPASSWORD=" + analystToken}, "pgbench", "-n", "-S", "-c", "200", "-j", "4", "-t", "20",
		fmt.Sprintf("host=%s port=%s user=analyst dbname=DB_PROD sslmode=disable connect_timeout=60", host, port))
	if err != nil {
		t.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := processedTx.FindStringSubmatch(out)
	if m == nil || m[1] != "4000" {
		t.Fatalf("pgbench did not process 4000 transactions:\n%s", out)
	}
	if f := failedTx.FindStringSubmatch(out); f != nil && f[1] != "0" {
		t.Fatalf("failed transactions:\n%s", out)
	}
	// The audit lines reach the test through a pipe: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := 0
		for _, r := range w.k.AuditRecords(t) {
			if r["protocol"] == "postgres" && strings.HasPrefix(fmt.Sprint(r["query"]), "SELECT abalance FROM pgbench_accounts") {
				if r["status"] != "ok" {
					t.Fatalf("a statement failed: %v", r)
				}
				ok++
			}
		}
		if ok == 4000 {
			break
		}
		if ok > 4000 || time.Now().After(deadline) {
			t.Fatalf("audit: got %d statement records, want 4000", ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresBenchmark measures pgbench -S against PostgreSQL directly and
// through keyhole, side by side in rounds, and prints TPS and latency
// percentiles. It runs only with KEYHOLE_PG_BENCH=1 (BENCHMARKS.md).
func TestPostgresBenchmark(t *testing.T) {
	if os.Getenv("KEYHOLE_PG_BENCH") != "1" {
		t.Skip("set KEYHOLE_PG_BENCH=1 to run the benchmark")
	}
	w := newPGWorld(t, "")
	pgbenchInit(t, w.pg)
	host, port, _ := strings.Cut(w.addr, ":")
	clients := envInt("KEYHOLE_PG_BENCH_CLIENTS", 8)
	secs := envInt("KEYHOLE_PG_BENCH_SECONDS", 10)
	rounds := envInt("KEYHOLE_PG_BENCH_ROUNDS", 3)
	targets := []struct{ name, dsn, pass string }{
		{"direct (TLS)", fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=app sslmode=require", w.pg.port, pgAppUser), pgAppPassword},
		{"keyhole (client TLS, upstream TLS)", fmt.Sprintf("host=%s port=%s user=analyst dbname=DB_PROD sslmode=require", host, port), analystToken},
		{"keyhole (client plain loopback)", fmt.Sprintf("host=%s port=%s user=analyst dbname=DB_PROD sslmode=disable", host, port), analystToken},
	}
	for r := 1; r <= rounds; r++ {
		for _, tg := range targets {
			dir := t.TempDir()
			out, err := runClient(t, []string{"PGPASSWORD=" + tg.pass}, "pgbench", "-n", "-S", "-c", itoa(clients), "-j", "2", "-T", itoa(secs),
				"-l", "--log-prefix="+filepath.Join(dir, "tx"), tg.dsn)
			if err != nil {
				t.Fatalf("pgbench %s: %v\n%s", tg.name, err, out)
			}
			tps := regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out)
			p50, p99 := latencies(t, dir)
			t.Logf("round %d  %-36s  tps %8s  p50 %6.0f us  p99 %6.0f us", r, tg.name, tps[1], p50, p99)
		}
	}
}

// latencies returns the median and 99th percentile transaction latency in
// microseconds from pgbench's per-transaction logs in dir.
func latencies(t *testing.T, dir string) (p50, p99 float64) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "tx*"))
	var lat []float64
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 3 {
				if v, err := strconv.ParseFloat(fields[2], 64); err == nil {
					lat = append(lat, v)
				}
			}
		}
		fh.Close()
	}
	if len(lat) == 0 {
		t.Fatal("pgbench logged no transactions")
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
