package rules

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"keyhole/secret"
)

// The sources below are references: parsing them does no I/O, and reading
// them takes something the rules package does not have (a program runner,
// a Vault client, the store), which the Loader's Kinds supply. Read on one
// of them directly reports that its kind is not available.

// ExecSource runs a program and reads its standard output (see the
// contract's "Secret sources"); the Loader's "exec" kind reads it.
type ExecSource struct {
	// Argv is the program and its arguments, split on spaces. A program
	// with a slash in its name is taken relative to the rules file's
	// directory; one without is looked up in PATH when it runs.
	Argv []string
}

// Read reports that no exec kind was given to the Loader.
func (e ExecSource) Read(context.Context) (secret.Value, time.Time, error) {
	return secret.Value{}, time.Time{}, kindUnavailable(e)
}

// String returns "exec:PROGRAM ARG...".
func (e ExecSource) String() string { return "exec:" + strings.Join(e.Argv, " ") }

// VaultSource is a field of a secret in HashiCorp Vault or OpenBao; the
// Loader's "vault" kind reads it with the rules file's vault section.
type VaultSource struct {
	// Path is read as GET /v1/PATH, such as "secret/data/stripe".
	Path string
	// Field is the key within the secret's data: data.data.FIELD for KV
	// version 2, else data.FIELD.
	Field string
	// Vault is the rules file's vault section; nil only when Parse found
	// none, which is an error.
	Vault *VaultConfig
}

// Read reports that no vault kind was given to the Loader.
func (v VaultSource) Read(context.Context) (secret.Value, time.Time, error) {
	return secret.Value{}, time.Time{}, kindUnavailable(v)
}

// String returns "vault:PATH#FIELD".
func (v VaultSource) String() string { return "vault:" + v.Path + "#" + v.Field }

// StoreSource is an entry of keyhole's own encrypted store; the Loader's
// "store" kind reads it.
type StoreSource struct {
	// Name is the entry's name.
	Name string
}

// Read reports that no store kind was given to the Loader.
func (s StoreSource) Read(context.Context) (secret.Value, time.Time, error) {
	return secret.Value{}, time.Time{}, kindUnavailable(s)
}

// String returns "store:NAME".
func (s StoreSource) String() string { return "store:" + s.Name }

func kindUnavailable(src Source) error {
	return fmt.Errorf("%s: %s: sources cannot be read here", src, SourceKind(src))
}

// maxExecArgs bounds the arguments of an exec: source.
const maxExecArgs = 64

func parseExec(arg, dir string) (Source, error) {
	if strings.ContainsFunc(arg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, errors.New("the command has a control character")
	}
	argv := strings.Fields(arg)
	if len(argv) == 0 {
		return nil, errors.New("exec: must be followed by a program and its arguments, split on spaces (no shell)")
	}
	if len(argv) > maxExecArgs {
		return nil, fmt.Errorf("exec: takes at most %d arguments", maxExecArgs)
	}
	if strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) {
		argv[0] = filepath.Join(dir, argv[0])
	}
	return ExecSource{Argv: argv}, nil
}

// ParseVaultRef parses the part after "vault:": PATH#FIELD. PATH is a
// Vault path without a leading slash or "." and ".." segments; FIELD is
// not empty. Its errors never quote the reference.
func ParseVaultRef(ref string) (path, field string, err error) {
	path, field, ok := strings.Cut(ref, "#")
	switch {
	case !ok:
		return "", "", errors.New("vault: wants PATH#FIELD, such as vault:secret/data/stripe#api_key")
	case path == "":
		return "", "", errors.New("vault: the path before # is empty")
	case field == "":
		return "", "", errors.New("vault: the field after # is empty")
	case strings.Contains(field, "#"):
		return "", "", errors.New("vault: has more than one #")
	case strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/"):
		return "", "", errors.New("vault: the path must not start or end with /")
	case len(path) > 512 || len(field) > 256:
		return "", "", errors.New("vault: the reference is too long")
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", errors.New("vault: the path has an empty, . or .. segment")
		}
	}
	if strings.ContainsFunc(path, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_./@+=,:", r))
	}) {
		return "", "", errors.New("vault: the path may hold letters, digits and -_./@+=,: only")
	}
	if strings.ContainsFunc(field, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", "", errors.New("vault: the field has a control character")
	}
	return path, field, nil
}

func parseStore(arg string) (Source, error) {
	if !validEnvName(arg) || len(arg) > 128 {
		return nil, errors.New("store: must be followed by the name of a stored secret (letters, digits and '_', not starting with a digit)")
	}
	return StoreSource{Name: arg}, nil
}
