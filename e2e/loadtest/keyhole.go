package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// benchSecret is the value keyhole injects for <<BENCH>>. No upstream body
// holds it, so scrubbing replaces nothing; keyhole scans every response
// anyway.
const benchSecret = "bench_live_Zq7Hx2Lw9Pv4Rk8Tn3Ys6Mb1"

// benchHeader is the header every client sends to both proxies, so that
// keyhole injects on every request.
const benchHeader = "Bearer <<BENCH>>"

// buildKeyhole runs go build for ./cmd/keyhole into dir and returns the
// binary's path. It must run from the repository root, which is where
// `go run ./e2e/loadtest` runs.
func buildKeyhole(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	bin := filepath.Join(dir, "keyhole")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/keyhole")
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build keyhole: %w (run from the repository root, or pass -keyhole PATH)", err)
	}
	return bin, nil
}

// keyholeRules is the rules file: one secret for upstream.test, whose name
// is pinned to the upstream's port; every other host is refused.
const keyholeRules = `secrets:
  BENCH:
    source: env:KEYHOLE_LOADTEST_BENCH
    hosts: [%s]
egress:
  default: deny
resolve:
  %s: %s
`

// startKeyhole writes the rules and runs bin serve on 127.0.0.1:0 with a
// fresh state dir, the upstream CA trusted and audit records appended to
// auditLog; name is the target's ("keyhole", or "keyhole-b" for
// -keyhole-b), and names its files in dir. It returns the running proxy and a pool holding the CA that
// keyhole created, for clients.
//
// The log level is info, not warn: keyhole prints its ready line (and
// nothing else on the request path) at info, so the level costs nothing
// under load and tells the tool the address.
func startKeyhole(ctx context.Context, name, bin, dir, upstreamAddr, auditLog string, extraEnv []string) (*child, *x509.CertPool, error) {
	rules := filepath.Join(dir, name+".yaml")
	text := fmt.Sprintf(keyholeRules, upstreamHost, upstreamHost, upstreamAddr)
	if err := os.WriteFile(rules, []byte(text), 0o600); err != nil {
		return nil, nil, fmt.Errorf("start keyhole: %w", err)
	}
	state := filepath.Join(dir, name+"-state")
	env := append(baseEnv(),
		"KEYHOLE_STATE_DIR="+state,
		"KEYHOLE_UPSTREAM_CA_FILE="+filepath.Join(dir, upstreamCAFile),
		"KEYHOLE_AUDIT_LOG="+auditLog,
		"KEYHOLE_LOG_LEVEL=info",
		"KEYHOLE_LOADTEST_BENCH="+benchSecret,
	)
	env = append(env, extraEnv...)
	c, err := startChild(ctx, name, bin, []string{"serve", "--listen", "127.0.0.1:0", "--rules", rules}, env, benchSecret)
	if err != nil {
		return nil, nil, err
	}
	c.log.teeToDiag()
	roots, err := readPool(filepath.Join(state, "ca.pem"))
	if err != nil {
		_ = c.Stop()
		return nil, nil, fmt.Errorf("start keyhole: %w", err)
	}
	return c, roots, nil
}

// startBaseline re-executes the tool in -serve-baseline mode.
func startBaseline(ctx context.Context, dir, upstreamAddr string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start baseline: %w", err)
	}
	args := []string{"-serve-baseline", "-dir", dir, "-upstream", upstreamAddr}
	return startChild(ctx, "baseline", self, args, baseEnv(), benchSecret)
}
