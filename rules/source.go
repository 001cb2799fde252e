package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"keyhole/secret"
)

// Source reads a credential. Sources are read at load and reload, never on the
// request path. String describes the source ("env:VAR", "file:/path") and
// never includes the value.
type Source interface {
	Read() (secret.Value, error)
	String() string
}

// MaxSecretSize bounds the bytes read from a file source.
const MaxSecretSize = 64 << 10

// ParseSource parses a source reference: "env:VAR" or "file:/path". A
// relative file path is taken relative to dir (the rules file's directory).
// A malformed reference is not quoted in the error: it may be a credential
// written where its reference belongs.
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
	default:
		return nil, errors.New("unknown source kind (want env:VAR or file:/path)")
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

// Read returns the variable's value; an unset or empty variable is an error.
func (e EnvSource) Read() (secret.Value, error) {
	v, ok := os.LookupEnv(string(e))
	if !ok {
		return secret.Value{}, fmt.Errorf("%s: the variable is not set", e)
	}
	return checkValue(e, []byte(v))
}

// String returns "env:NAME".
func (e EnvSource) String() string { return "env:" + string(e) }

// FileSource reads a credential from a whole file, trailing newline trimmed.
type FileSource string

// Read returns the file's contents without its trailing newline (and a
// carriage return before it).
func (f FileSource) Read() (secret.Value, error) {
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

// checkValue refuses values that cannot travel in an HTTP header: empty ones,
// and ones with control characters (a CR or LF would split the header).
func checkValue(src Source, b []byte) (secret.Value, error) {
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
