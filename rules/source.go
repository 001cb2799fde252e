package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"keyhole/secret"
)

// Source reads a credential. Sources are read at load and reload, and again
// before a value expires; never on the request path. Read returns the value
// and the time it stops being valid (the zero time: it does not expire); it
// stops when ctx ends. String describes the source ("env:VAR",
// "file:/path") and never includes the value.
type Source interface {
	Read(ctx context.Context) (v secret.Value, expires time.Time, err error)
	String() string
}

// MaxSecretSize bounds the bytes read from a file source.
const MaxSecretSize = 64 << 10

// ParseSource parses a source reference: "env:VAR", "file:/path",
// "exec:PROGRAM ARG...", "vault:PATH#FIELD" or "store:NAME". It does no
// I/O. A relative file path (and a relative program path) is taken
// relative to dir (the rules file's directory). A malformed reference is
// not quoted in the error: it may be a credential written where its
// reference belongs.
func ParseSource(ref, dir string) (Source, error) {
	kind, arg, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, sourceKindMissing(ref)
	}
	switch kind {
	case "env":
		if !validEnvName(arg) {
			return nil, errors.New("env: must be followed by an environment variable name (letters, digits and '_', not starting with a digit)")
		}
		return EnvSource(arg), nil
	case "file":
		if arg == "" {
			return nil, errors.New("file: must be followed by a path")
		}
		if strings.ContainsFunc(arg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, errors.New("the file path has a control character")
		}
		if !filepath.IsAbs(arg) {
			arg = filepath.Join(dir, arg)
		}
		return FileSource(filepath.Clean(arg)), nil
	case "exec":
		return parseExec(arg, dir)
	case "vault":
		path, field, err := ParseVaultRef(arg)
		if err != nil {
			return nil, err
		}
		return VaultSource{Path: path, Field: field}, nil
	case "store":
		return parseStore(arg)
	default:
		return nil, errors.New("unknown source kind (want " + sourceSyntax + ")")
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// EnvSource reads a credential from the environment variable it names.
type EnvSource string

// Read returns the variable's value, which does not expire; an unset or
// empty variable is an error.
func (e EnvSource) Read(context.Context) (secret.Value, time.Time, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok {
		return secret.Value{}, time.Time{}, fmt.Errorf("%s: the variable is not set", e)
	}
	val, err := checkValue(e, []byte(v))
	return val, time.Time{}, err
}

// String returns "env:NAME".
func (e EnvSource) String() string { return "env:" + string(e) }

// FileSource reads a credential from a whole file, trailing newline trimmed.
type FileSource string

// Read returns the file's contents without its trailing newline (and a
// carriage return before it). The value does not expire: the Watcher reads
// the file again when it changes.
func (f FileSource) Read(context.Context) (secret.Value, time.Time, error) {
	v, err := f.read()
	return v, time.Time{}, err
}

func (f FileSource) read() (secret.Value, error) {
	// Only regular files: opening a FIFO would block the load forever, and a
	// device such as /dev/stdin is no place for a credential.
	fi, err := os.Stat(string(f))
	if err != nil {
		return secret.Value{}, fmt.Errorf("%s: %w", f, pathless(err))
	}
	if !fi.Mode().IsRegular() {
		return secret.Value{}, fmt.Errorf("%s: not a regular file", f)
	}
	fh, err := os.Open(string(f))
	if err != nil {
		return secret.Value{}, fmt.Errorf("%s: %w", f, pathless(err))
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxSecretSize+1))
	if err != nil {
		return secret.Value{}, fmt.Errorf("%s: %w", f, pathless(err))
	}
	if len(b) > MaxSecretSize {
		return secret.Value{}, fmt.Errorf("%s: larger than %d bytes", f, MaxSecretSize)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return checkValue(f, b)
}

// String returns "file:PATH".
func (f FileSource) String() string { return "file:" + string(f) }

// Path returns the file's path, for watching it.
func (f FileSource) Path() string { return string(f) }

// pathless drops the path from an *os.PathError, which the caller names.
func pathless(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckValue refuses a value that cannot travel in an HTTP header: an empty
// one, or one with a control character (a CR or LF would split the header).
// Its error names src and the offending byte's offset, never the value.
// Source kinds outside this package check what they read with it.
func CheckValue(src fmt.Stringer, b []byte) (secret.Value, error) { return checkValue(src, b) }

// checkValue refuses values that cannot travel in an HTTP header: empty ones,
// and ones with control characters (a CR or LF would split the header).
func checkValue(src fmt.Stringer, b []byte) (secret.Value, error) {
	if len(b) == 0 {
		return secret.Value{}, fmt.Errorf("%s: the value is empty", src)
	}
	for i, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return secret.Value{}, fmt.Errorf("%s: the value has a control character at byte %d; it cannot be sent in a header", src, i)
		}
	}
	return secret.New(b), nil
}
