// Package demo is keyhole's offline quick start: `keyhole demo` shows
// injection, scrubbing, a refusal and the audit record with nothing but
// this machine.
//
// [Run] writes a rules file (embedded here: one secret, DEMO_TOKEN, for
// api.demo.test), a random demo value for it and a fresh state dir into a
// throwaway directory; starts a local HTTPS echo server on 127.0.0.1 whose
// certificate comes from a CA made for the run; starts `keyhole serve` on
// those rules, with the demo hosts pinned to the echo server by the rules'
// resolve section and the echo server's CA trusted through
// KEYHOLE_UPSTREAM_CA_FILE; and then runs, through keyhole, the curl lines
// it prints (or, where curl is not installed, sends the same requests with
// a Go client):
//
//  1. Authorization: Bearer <<DEMO_TOKEN>> to api.demo.test: the echo
//     server receives the real value (injection), and its echo of it comes
//     back as the placeholder (scrubbing);
//  2. the same header to other.demo.test, which the secret's rule does not
//     name: a 403 with a JSON reason, and the server receives nothing;
//  3. the audit records of both.
//
// Nothing is resolved or sent beyond 127.0.0.1: the only hosts are pinned,
// and every other host is refused by the rules' egress default.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

//go:embed rules.yaml
var rulesText string

var rulesTemplate = template.Must(template.New("rules").Parse(rulesText))

// The demo's names.
const (
	secretName  = "DEMO_TOKEN"
	placeholder = "<<" + secretName + ">>"
	allowedHost = "api.demo.test"
	otherHost   = "other.demo.test"
)

// Options configure Run. Only Keyhole must be set.
type Options struct {
	// Keyhole is the keyhole binary Run starts as `keyhole serve`.
	Keyhole string
	// Dir holds the rules, the demo value, the state dir and the audit
	// log. Empty (the default): a new temporary directory, removed when
	// Run returns. A directory that is given is kept, so the audit log
	// can be read afterwards.
	Dir string
	// Listen is keyhole's address (default 127.0.0.1:0, a free port).
	Listen string
	// KeepRunning keeps keyhole and the echo server running after the
	// steps, until ctx ends, and prints the commands to try them by hand.
	KeepRunning bool
}

// Run runs the demo, writing what it does to out. It returns an error if
// any step does not behave as described (the demo checks itself).
func Run(ctx context.Context, opts Options, out io.Writer) (err error) {
	if opts.Keyhole == "" {
		return errors.New("demo: no keyhole binary")
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keyhole-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	f, err := writeFiles(dir)
	if err != nil {
		return err
	}
	upstream, err := newEchoServer([]string{allowedHost, otherHost})
	if err != nil {
		return err
	}
	defer upstream.Close()
	if err := f.finish(upstream); err != nil {
		return err
	}
	srv, err := startServer(ctx, opts.Keyhole, f.rules, opts.Listen,
		"KEYHOLE_STATE_DIR="+f.state,
		"KEYHOLE_UPSTREAM_CA_FILE="+f.upstreamCA,
		"KEYHOLE_AUDIT_LOG="+f.audit,
		"KEYHOLE_LOG_LEVEL=info") // the ready line is at info
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer srv.Stop()

	p := &printer{w: out}
	p.intro(dir, opts.Dir == "", upstream.Addr(), srv.Addr, f)
	client, err := newAgent(srv.Addr, filepath.Join(f.state, "ca.pem"))
	if err != nil {
		return err
	}
	if client.curl == "" {
		p.note("curl is not installed: the demo's own Go HTTP client sends the requests of the curl lines.")
	}
	if err := stepInject(ctx, p, client, upstream, f.value); err != nil {
		return err
	}
	if err := stepRefuse(ctx, p, client, upstream); err != nil {
		return err
	}
	if err := stepAudit(ctx, p, f.audit); err != nil {
		return err
	}
	if !opts.KeepRunning {
		p.outro(dir, opts.Dir == "")
		return nil
	}
	p.byHand(srv.Addr, f, client.curlLine(allowedHost), client.curlLine(otherHost))
	select {
	case <-ctx.Done():
	case <-srv.done:
		return fmt.Errorf("demo: keyhole stopped; its log:\n%s", srv.log())
	}
	return nil
}

// files are the paths Run writes into its directory.
type files struct {
	dir, rules, token, upstreamCA, state, audit string
	value                                       string // the demo's "real" secret
}

// writeFiles writes the demo value into dir and names the other files.
func writeFiles(dir string) (*files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	f := &files{
		dir:        dir,
		rules:      filepath.Join(dir, "keyhole.yaml"),
		token:      filepath.Join(dir, "demo-token"),
		upstreamCA: filepath.Join(dir, "upstream-ca.pem"),
		state:      filepath.Join(dir, "state"),
		audit:      filepath.Join(dir, "audit.jsonl"),
		value:      "demo-real-secret-" + hex.EncodeToString(raw),
	}
	if err := os.WriteFile(f.token, []byte(f.value+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return f, nil
}

// finish writes the files that need the echo server: its CA and the rules
// that pin the demo hosts to it.
func (f *files) finish(e *echoServer) error {
	if err := os.WriteFile(f.upstreamCA, e.caPEM, 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var b bytes.Buffer
	if err := rulesTemplate.Execute(&b, struct{ Upstream string }{e.Addr()}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(f.rules, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// stepInject sends the placeholder to the allowed host and checks that
// the real value arrived and came back as the placeholder.
func stepInject(ctx context.Context, p *printer, a *agent, e *echoServer, value string) error {
	p.step("1. Injection and scrubbing: the agent sends the placeholder to "+allowedHost, a.curlLine(allowedHost))
	status, body, err := a.get(ctx, allowedHost)
	if err != nil {
		return err
	}
	p.response(status, body)
	got := e.Received()
	if status != http.StatusOK || len(got) != 1 || got[0] != "Bearer "+value {
		return fmt.Errorf("demo: step 1: got status %d and %d requests at the echo server; want 200 and one carrying the demo value", status, len(got))
	}
	if strings.Contains(body, value) || !strings.Contains(body, "Bearer "+placeholder) {
		return errors.New("demo: step 1: the echoed value was not replaced by the placeholder")
	}
	p.note("The echo server received  Authorization: Bearer " + value + "  (the demo value in demo-token).")
	p.note("It echoed that back; keyhole replaced it, so the agent sees  Bearer " + placeholder + "  above.")
	return nil
}

// stepRefuse sends the placeholder to a host the secret's rule does not
// name and checks that it was refused before anything reached the server.
func stepRefuse(ctx context.Context, p *printer, a *agent, e *echoServer) error {
	p.step("2. A refusal: the same placeholder to "+otherHost+", which the rule does not name", a.curlLine(otherHost))
	before := len(e.Received())
	status, body, err := a.get(ctx, otherHost)
	if err != nil {
		return err
	}
	p.response(status, body)
	if status != http.StatusForbidden || !strings.Contains(body, `"reason":"host_not_allowed"`) || len(e.Received()) != before {
		return fmt.Errorf("demo: step 2: got status %d; want 403 with reason host_not_allowed, and nothing sent", status)
	}
	p.note("Refused with a JSON reason the agent can act on; the echo server received nothing.")
	return nil
}

// stepAudit waits for both requests' audit records and prints them.
func stepAudit(ctx context.Context, p *printer, path string) error {
	p.step("3. The audit log: one record per request, never a secret value", "cat "+path)
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("demo: audit log: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(data) > 0 && len(lines) >= 2 {
			p.lines(lines)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: audit log %s: got %d records after 10s, want 2", path, len(lines))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
