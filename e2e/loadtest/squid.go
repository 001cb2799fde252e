package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// squidBin is Debian's squid-openssl; the peer is skipped when it is
// missing. squidCertgen makes the database of the leaves Squid mints.
const (
	squidBin     = "/usr/sbin/squid"
	squidCertgen = "/usr/lib/squid/security_file_certgen"
)

// squidReady is the line Squid's cache log (stderr, with -d 1) prints once
// it accepts bumped connections.
var squidReady = regexp.MustCompile(`Accepting SSL bumped HTTP Socket connections at \S+ local=(\S+)`)

// squidConfig is the peer's configuration: bump every CONNECT with a leaf
// from its own CA, replace the Authorization header (the placeholder) with
// the real value, as keyhole injects it, and go direct to the upstream
// over TLS verified with the upstream's CA. upstream.test resolves, in
// Squid's own hosts file, to a loopback address where the upstream also
// listens on port 443 (Squid has no per-host port pinning like keyhole's
// resolve: or the baseline's dialer; through a cache_peer it would send
// "Connection: close" upstream and open a connection per request). No
// cache, one worker, no logging on the request path, no pinger.
var squidConfig = template.Must(template.New("squid.conf").Parse(`http_port 127.0.0.1:{{.Port}} ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=4MB tls-cert={{.Dir}}/ca.pem tls-key={{.Dir}}/ca-key.pem
sslcrtd_program {{.Certgen}} -s {{.Dir}}/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
ssl_bump bump all
http_access allow localhost
http_access deny all
hosts_file {{.Dir}}/hosts
tls_outgoing_options cafile={{.UpstreamCA}}
request_header_access Authorization deny all
request_header_replace Authorization Bearer {{.Secret}}
cache deny all
cache_mem 0
workers 1
pinger_enable off
pid_filename {{.Dir}}/squid.pid
cache_log {{.Dir}}/cache.log
access_log none
cache_store_log none
logfile_rotate 0
coredump_dir {{.Dir}}
shutdown_lifetime 1 seconds
{{if .User}}cache_effective_user {{.User}}
{{end}}`))

// squidParams fill squidConfig.
type squidParams struct {
	Port         int
	Dir, Certgen string
	UpstreamCA   string
	Secret       string
	User         string // the user Squid switches to when started as root; empty otherwise
}

// writeSquidConfig makes Squid's directory under dir: its CA (from ca),
// its leaf database, and squid.conf for a Squid on 127.0.0.1:port in
// front of the upstream, which listens on upstreamIP port 443. It returns
// the config's path.
func writeSquidConfig(dir string, port int, ca *authority, upstreamIP string) (string, error) {
	sq := filepath.Join(dir, "squid")
	if err := os.MkdirAll(sq, 0o755); err != nil {
		return "", fmt.Errorf("squid: %w", err)
	}
	if err := ca.writeCert(filepath.Join(sq, "ca.pem")); err != nil {
		return "", err
	}
	if err := ca.writeKey(filepath.Join(sq, "ca-key.pem")); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(sq, "hosts"), []byte(upstreamIP+" "+upstreamHost+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("squid: %w", err)
	}
	p := squidParams{Port: port, Dir: sq, Certgen: squidCertgen, UpstreamCA: filepath.Join(dir, upstreamCAFile), Secret: benchSecret}
	var err error
	if err := os.RemoveAll(filepath.Join(sq, "ssl_db")); err != nil {
		return "", fmt.Errorf("squid: %w", err)
	}
	db := exec.Command(squidCertgen, "-c", "-s", filepath.Join(sq, "ssl_db"), "-M", "4MB")
	if out, err := db.CombinedOutput(); err != nil {
		return "", fmt.Errorf("squid: %s: %w: %s", squidCertgen, err, strings.TrimSpace(string(out)))
	}
	if os.Geteuid() == 0 {
		// Squid refuses to run as root: it switches to an unprivileged
		// user, which must own the leaf database and the log.
		if p.User, err = giveTo(sq, "proxy", "nobody"); err != nil {
			return "", err
		}
	}
	var b strings.Builder
	if err := squidConfig.Execute(&b, p); err != nil {
		return "", fmt.Errorf("squid: %w", err)
	}
	// The config holds the bench secret: readable by root only (Squid
	// reads it before it switches user).
	conf := filepath.Join(sq, "squid.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("squid: %w", err)
	}
	return conf, nil
}

// giveTo makes the first of names that exists the owner of everything
// under dir (and dir's parent readable to it), and returns its name.
func giveTo(dir string, names ...string) (string, error) {
	for _, name := range names {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			return "", fmt.Errorf("squid: %w", err)
		}
		err = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			return "", fmt.Errorf("squid: %w", err)
		}
		return name, nil
	}
	return "", fmt.Errorf("squid: none of the users %s exists to run Squid as", strings.Join(names, ", "))
}

// errNoSquid means Squid cannot run here (not installed, or port 443 of
// a loopback address cannot be bound: not root); the run goes on without
// it.
var errNoSquid = errors.New("no Squid column")

// startSquid runs Squid in the foreground (-N, one process) with the
// config above, on a free port of 127.0.0.1, in front of up, which it
// makes listen on port 443 of a loopback address of its own. A port taken
// between the probe and Squid's bind is retried.
func startSquid(ctx context.Context, dir string, ca *authority, up *upstream) (*child, error) {
	if _, err := os.Stat(squidBin); err != nil {
		return nil, fmt.Errorf("%w: %s is not installed (Debian's squid-openssl)", errNoSquid, squidBin)
	}
	upstreamIP, err := up.listen443()
	if err != nil {
		return nil, fmt.Errorf("%w: %v (binding port 443 needs root)", errNoSquid, err)
	}
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		conf, err := writeSquidConfig(dir, port, ca, upstreamIP)
		if err != nil {
			return nil, err
		}
		c, err := startChildReady(ctx, "squid", squidBin, []string{"-N", "-d", "1", "-f", conf}, baseEnv(), benchSecret, squidReady)
		if err == nil {
			return c, nil
		}
		last = err
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	return nil, last
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("squid: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
