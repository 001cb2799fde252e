package secret

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadKeyFile reads a key of size bytes from the file at path, which holds
// it in standard base64 and must be a regular file not accessible by group
// or others; the error for a wider mode names the path, the mode and the
// chmod that fixes it. A missing file is an error that matches
// fs.ErrNotExist. The error never holds the file's content.
func LoadKeyFile(path string, size int) (Value, error) {
	f, err := os.Open(path)
	if err != nil {
		return Value{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Value{}, err
	}
	if !fi.Mode().IsRegular() {
		return Value{}, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Value{}, fmt.Errorf("%s has mode %04o, accessible by group or others; run `chmod 600 %s`", path, perm, path)
	}
	// Read a little more than the key takes, to notice junk.
	data, err := io.ReadAll(io.LimitReader(f, int64(base64.StdEncoding.EncodedLen(size))+64))
	if err != nil {
		return Value{}, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != size {
		return Value{}, fmt.Errorf("%s does not hold a base64 key of %d bytes", path, size)
	}
	return New(raw), nil
}

// LoadOrCreateKeyFile loads a key of size bytes from path as LoadKeyFile
// does, creating path's directory (mode 0700) and a new random key file
// (mode 0600) when the file does not exist. Creation is atomic: concurrent
// callers all end up with the same key, and no caller ever reads a partly
// written file.
func LoadOrCreateKeyFile(path string, size int) (Value, error) {
	k, err := LoadKeyFile(path, size)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Value{}, err
	}
	raw := make([]byte, size)
	if _, err := rand.Read(raw); err != nil {
		return Value{}, err
	}
	if err := createKeyFile(path, raw); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadKeyFile(path, size) // another process won the race
		}
		return Value{}, err
	}
	return New(raw), nil
}

// createKeyFile writes raw to a temporary file and links it to path, so that
// path appears complete or not at all and an existing file is never replaced.
func createKeyFile(path string, raw []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, base64.StdEncoding.EncodeToString(raw)+"\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}
