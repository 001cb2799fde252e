package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"keyhole/proxy"
	"keyhole/redisstate"
)

// settings are every KEYHOLE_* setting. Each is read from its environment
// variable and can be overridden by the flag of the same name: --listen for
// KEYHOLE_LISTEN, --audit-log for KEYHOLE_AUDIT_LOG, and so on.
type settings struct {
	Proxy    proxy.Config
	Rules    string     `env:"KEYHOLE_RULES" envDefault:"./keyhole.yaml"`
	StateDir string     `env:"KEYHOLE_STATE_DIR"`
	AuditLog string     `env:"KEYHOLE_AUDIT_LOG" envDefault:"-"`
	LogLevel slog.Level `env:"KEYHOLE_LOG_LEVEL" envDefault:"info"`
	// AdminListen is the address of /healthz, /readyz and /metrics; empty
	// (the default) turns the admin listener off.
	AdminListen string `env:"KEYHOLE_ADMIN_LISTEN"`
	// KeysDir, when set, is a read-only directory of the keys replicas
	// share (a mounted Secret); serve copies them into StateDir at start.
	KeysDir string `env:"KEYHOLE_KEYS_DIR"`
	// Redis is the state shared by replicas; off without KEYHOLE_REDIS_URL.
	Redis redisstate.Options
	// BudgetTimeout bounds a budget check in Redis; a check that takes
	// longer refuses the request (budgets fail closed).
	BudgetTimeout time.Duration `env:"KEYHOLE_BUDGET_TIMEOUT" envDefault:"100ms"`
	// Trace, when set, is a file for a Go execution trace of the whole
	// run (diagnosis only; see startTrace).
	Trace string `env:"KEYHOLE_TRACE"`
}

// settingHelp describes each setting in -h output; the README's settings
// table says more.
var settingHelp = map[string]string{
	"KEYHOLE_LISTEN":                  "the proxy's address",
	"KEYHOLE_RULES":                   "the rules file",
	"KEYHOLE_STATE_DIR":               "CA, token key and revocations (default $XDG_STATE_HOME/keyhole or ~/.local/state/keyhole)",
	"KEYHOLE_KEYS_DIR":                "read-only dir of the keys replicas share (a mounted Secret), copied into the state dir at start",
	"KEYHOLE_AUDIT_LOG":               "audit records: - for stdout, or a file to append to",
	"KEYHOLE_UPSTREAM_CA_FILE":        "extra PEM roots trusted for upstream servers",
	"KEYHOLE_LOG_LEVEL":               "operational log level: debug, info, warn, error",
	"KEYHOLE_ADMIN_LISTEN":            "address of /healthz, /readyz and /metrics (off when empty)",
	"KEYHOLE_BUDGET_TIMEOUT":          "a budget check in Redis; slower refuses the request",
	"KEYHOLE_MAX_CONNS":               "client connections open at once",
	"KEYHOLE_MAX_HEADER_BYTES":        "largest request header",
	"KEYHOLE_HEADER_TIMEOUT":          "time to read a request header",
	"KEYHOLE_HANDSHAKE_TIMEOUT":       "client TLS handshake in a tunnel; upstream TLS handshake",
	"KEYHOLE_IDLE_TIMEOUT":            "closes a silent connection, tunnel or upstream body",
	"KEYHOLE_DIAL_TIMEOUT":            "connecting to an upstream",
	"KEYHOLE_UPSTREAM_HEADER_TIMEOUT": "waiting for an upstream's response header",
	"KEYHOLE_SHUTDOWN_TIMEOUT":        "how long in-flight requests may finish on SIGINT/SIGTERM",
	"KEYHOLE_SCRUB_RETIRED":           "how long a value removed or rotated out of the rules is still scrubbed",
	"KEYHOLE_MINT_TIMEOUT":            "one call to a token endpoint (OAuth 2.0, GitHub, STS)",
	"KEYHOLE_REDIS_URL":               "redis:// or rediss:// URL of the state shared by replicas (off when empty)",
	"KEYHOLE_REDIS_CA_FILE":           "extra PEM roots trusted for a rediss:// server",
	"KEYHOLE_REDIS_STALE":             "how long Redis may be unreachable before /readyz fails and minted tokens are refused",
	"KEYHOLE_TRACE":                   "a file for a Go execution trace of the whole run (diagnosis; off when empty)",
}

// flagName is the flag for an environment variable: KEYHOLE_AUDIT_LOG is
// --audit-log.
func flagName(key string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, "KEYHOLE_")), "_", "-")
}

// parseSettings reads settings from the environment and args. Flags win
// over variables; both go through the same parser, so a value means the
// same whichever way it is given. extra, when not nil, registers the
// command's own flags. Flags and positional arguments may be mixed; it
// returns the positional arguments.
func parseSettings(name string, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (settings, []string, error) {
	var s settings
	params, err := env.GetFieldParams(&s)
	if err != nil {
		return s, nil, err
	}
	fs := flag.NewFlagSet("keyhole "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	overrides := map[string]string{}
	for _, p := range params {
		key := p.Key
		usage := settingHelp[key] + " [" + key + "]"
		if p.HasDefaultValue {
			usage += " (default " + p.DefaultValue + ")"
		}
		fs.Func(flagName(key), usage, func(v string) error {
			overrides[key] = v
			return nil
		})
	}
	for _, f := range extra {
		f(fs)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return s, nil, err
		}
		return s, nil, exitError{} // fs has printed the problem
	}
	environ := env.ToMap(os.Environ())
	for k, v := range overrides {
		environ[k] = v
	}
	if err := env.ParseWithOptions(&s, env.Options{Environment: environ}); err != nil {
		return s, nil, fmt.Errorf("settings: %w", err)
	}
	if s.StateDir == "" {
		if s.StateDir, err = defaultStateDir(); err != nil {
			return s, nil, err
		}
	}
	return s, positional, nil
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("token attenuate TOKEN --secrets A"). "--" ends the
// flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// defaultStateDir is $XDG_STATE_HOME/keyhole, else ~/.local/state/keyhole.
func defaultStateDir() (string, error) {
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "keyhole"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("settings: no KEYHOLE_STATE_DIR, XDG_STATE_HOME or home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "keyhole"), nil
}
