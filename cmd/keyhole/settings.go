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

	"github.com/caarlos0/env/v11"

	"keyhole/proxy"
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
		usage := key
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
