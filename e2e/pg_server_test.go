package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// One real PostgreSQL 15 serves every database test of the package run:
// started on first use as the unprivileged user nobody (postgres refuses to
// run as root) in a temporary directory, with scram-sha-256 authentication
// and TLS under a certificate of the test CA for pg.test, and stopped by
// TestMain.

// Credentials of the test server. The app password is a secret value: no
// audit line, log or client output may hold it.
const (
	pgSuperPassword = "super-TEST-pg-SECRET-9f8e7d"
	pgAppUser       = "app_owner"
	pgAppPassword   = "app-TEST-pg-SECRET-1a2b3c4d"
)

const pgBin = "/usr/lib/postgresql/15/bin"

type pgServer struct {
	dir  string
	port int
	cmd  *exec.Cmd
	log  string
}

var (
	pgOnce     sync.Once
	pgShared   *pgServer
	pgStartErr error
)

// postgres returns the shared server, starting it on first use. Without
// PostgreSQL the test skips, except under CI=true, where it fails.
func postgres(t *testing.T) *pgServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL 15 is not installed (%v); .ci/run installs postgresql-15", err)
		}
		t.Skipf("PostgreSQL 15 is not installed: %v", err)
	}
	pgOnce.Do(func() { pgShared, pgStartErr = startPostgres(t, upstreamCA(t)) })
	if pgStartErr != nil {
		t.Fatalf("starting PostgreSQL: %v", pgStartErr)
	}
	return pgShared
}

// stopPostgres stops the shared server, if it was started.
func stopPostgres() {
	if pgShared == nil {
		return
	}
	_ = pgShared.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	done := make(chan struct{})
	go func() { _ = pgShared.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = pgShared.cmd.Process.Kill()
	}
	os.RemoveAll(pgShared.dir)
}

const nobody = 65534

func asNobody(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: nobody, Gid: nobody}
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=/tmp"}
}

func startPostgres(t *testing.T, ca *testCA) (*pgServer, error) {
	dir, err := os.MkdirTemp("", "keyhole-pg-")
	if err != nil {
		return nil, err
	}
	srv := &pgServer{dir: dir, log: filepath.Join(dir, "postgres.log")}
	data := filepath.Join(dir, "data")
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(pgSuperPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			return nil, err
		}
		_ = os.Chown(pw, nobody, nobody)
	}
	initdb := exec.Command(filepath.Join(pgBin, "initdb"), "-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile="+pw, "-E", "UTF8", "--no-locale", "--no-sync")
	asNobody(initdb)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// The server's certificate: for pg.test (the name the rules use) and
	// 127.0.0.1, signed by the test CA that keyhole trusts.
	cert := ca.leafPEM(t, []string{"pg.test", "127.0.0.1"})
	if err := os.WriteFile(filepath.Join(data, "server.crt"), cert.cert, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, "server.key"), cert.key, 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		_ = os.Chown(filepath.Join(data, "server.crt"), nobody, nobody)
		_ = os.Chown(filepath.Join(data, "server.key"), nobody, nobody)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv.port = port
	logf, err := os.Create(srv.log)
	if err != nil {
		return nil, err
	}
	srv.cmd = exec.Command(filepath.Join(pgBin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir, "-c", "max_connections=400",
		"-c", "ssl=on", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "password_encryption=scram-sha-256", "-c", "log_min_messages=warning")
	asNobody(srv.cmd)
	srv.cmd.Stdout, srv.cmd.Stderr = logf, logf
	if err := srv.cmd.Start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := srv.super(ctx, "postgres")
		if err == nil {
			c.Close(ctx)
			break
		}
		if ctx.Err() != nil {
			log, _ := os.ReadFile(srv.log)
			return nil, fmt.Errorf("postgres did not accept connections: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	setup := []string{
		"CREATE ROLE " + pgAppUser + " LOGIN CREATEROLE PASSWORD '" + pgAppPassword + "'",
		"CREATE DATABASE app OWNER " + pgAppUser,
	}
	if err := srv.exec(ctx, "postgres", "postgres", pgSuperPassword, setup...); err != nil {
		return nil, err
	}
	schema := []string{
		"CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)",
		"INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 100) i",
		"CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric)",
		"INSERT INTO orders SELECT i, i % 100 + 1, i * 1.5 FROM generate_series(1, 1000) i",
		"CREATE TABLE secrets_table (v text)",
		"INSERT INTO secrets_table VALUES ('not for agents')",
		"CREATE TABLE notes (id serial PRIMARY KEY, body text)",
		"CREATE TABLE big (id int, payload text)",
		"INSERT INTO big SELECT i, repeat('x', 1000) FROM generate_series(1, 50000) i",
	}
	if err := srv.exec(ctx, "app", pgAppUser, pgAppPassword, schema...); err != nil {
		return nil, err
	}
	return srv, nil
}

// super connects as the superuser over TLS to db.
func (srv *pgServer) super(ctx context.Context, db string) (*pgconn.PgConn, error) {
	return srv.connectAs(ctx, db, "postgres", pgSuperPassword)
}

func (srv *pgServer) connectAs(ctx context.Context, db, user, password string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=disable", srv.port, db, user))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	return pgconn.ConnectConfig(ctx, cfg)
}

func (srv *pgServer) exec(ctx context.Context, db, user, password string, stmts ...string) error {
	c, err := srv.connectAs(ctx, db, user, password)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s).ReadAll(); err != nil {
			return fmt.Errorf("%s: %w", strings.Fields(s)[0], err)
		}
	}
	return nil
}

// Addr is the server's address.
func (srv *pgServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(srv.port) }

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type pemPair struct{ cert, key []byte }

// leafPEM returns a certificate for names signed by the CA, and its key,
// in PEM.
func (ca *testCA) leafPEM(t *testing.T, names []string) pemPair {
	leaf := ca.leaf(t, names, time.Now().Add(12*time.Hour))
	der, _ := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	return pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}
}
