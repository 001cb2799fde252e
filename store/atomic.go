package store

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// WriteAtomic writes data to a temporary file (mode 0600) beside path,
// fsyncs it, renames it over path and fsyncs the directory: readers see the
// old contents or the new, never part of them. The handoff state uses it
// too.
func WriteAtomic(path string, data []byte) error { return writeAtomic(path, data) }

// Lock takes an exclusive flock on the file at path (created 0600 if
// missing), for writers that share a directory with other processes; the
// returned function releases it. The handoff state uses it too.
func Lock(path string) (unlock func(), err error) {
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		fh.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(fh.Fd()), syscall.LOCK_UN)
		fh.Close()
	}, nil
}

// ReadLimited reads the file at path whole, refusing one larger than limit
// bytes. A missing file's error wraps fs.ErrNotExist. The handoff state
// uses it too.
func ReadLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes; refusing it", path, limit)
	}
	return data, nil
}
