package tokens

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RevokedFile is the name of the revocation list in the state directory. It
// is append-only, mode 0600, one revoked id a line, optionally followed by a
// space and the time of revocation; blank lines and lines starting with '#'
// are ignored.
const RevokedFile = "revoked"

// maxRevokedSize bounds the revocation list that is read: about 300,000 ids.
const maxRevokedSize = 16 << 20

// DefaultWatchInterval is how often Watch polls the revocation list when its
// interval is not positive.
const DefaultWatchInterval = 250 * time.Millisecond

// Revoke appends an id to the revocation list in stateDir, creating stateDir
// (mode 0700) and the list (mode 0600) when missing, and returns the id.
// idOrToken is an id, or a whole token, whose own id (the last) is revoked;
// a token is read without the key. Revoking an id ends every token whose
// chain holds it, so revoking a parent ends its children. Revoking an id
// twice is not an error; the list keeps one line.
func Revoke(stateDir, idOrToken string, now time.Time) (id string, err error) {
	id = idOrToken
	if LooksLikeToken(idOrToken) {
		info, err := Inspect(idOrToken)
		if err != nil {
			return "", fmt.Errorf("revoke: %w", err)
		}
		id = info.ID
	} else if err := checkID(id); err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("revoke %s: %w", id, err)
	}
	path := filepath.Join(stateDir, RevokedFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("revoke %s: %w", id, err)
	}
	defer f.Close()
	ids, _, err := readRevoked(f, path)
	if err != nil {
		return "", fmt.Errorf("revoke %s: %w", id, err)
	}
	if _, ok := ids[id]; ok {
		return id, nil
	}
	// One write of a short line to an O_APPEND file: readers see it whole or
	// not at all, and they ignore an unterminated last line anyway.
	if _, err := fmt.Fprintf(f, "%s %s\n", id, now.UTC().Format(time.RFC3339)); err != nil {
		return "", fmt.Errorf("revoke %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("revoke %s: %w", id, err)
	}
	return id, nil
}

// Revocations is the set of revoked ids read from a state directory. It is
// safe for concurrent use; a nil *Revocations revokes nothing.
type Revocations struct {
	path string
	ids  atomic.Pointer[map[string]struct{}]

	mu   sync.Mutex  // serializes reloads
	seen fs.FileInfo // the list as last read; nil when it did not exist

	shared atomic.Pointer[sharedHolder] // see Share; nil without one
}

// OpenRevocations reads the revocation list in stateDir. A missing list is
// an empty one. Call Watch to follow later revocations.
func OpenRevocations(stateDir string) (*Revocations, error) {
	r := &Revocations{path: filepath.Join(stateDir, RevokedFile)}
	empty := map[string]struct{}{}
	r.ids.Store(&empty)
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Revoked reports whether any id in g.IDs is revoked, so that revoking a
// parent ends its children. It is a few map look-ups and never touches the
// file.
func (r *Revocations) Revoked(g *Grant) bool {
	if r == nil || g == nil {
		return false
	}
	ids := *r.ids.Load()
	for _, id := range g.IDs {
		if _, ok := ids[id]; ok {
			return true
		}
	}
	return r.sharedRevoked(g)
}

// Watch polls the revocation list every interval (DefaultWatchInterval when
// interval is not positive) and re-reads it when its size, modification time
// or identity changes; an unchanged list costs one stat. It blocks until ctx
// is done, so run it in its own goroutine. A failed read keeps the previous
// set and is passed to onErr, which may be nil. A deleted list empties the
// set.
func (r *Revocations) Watch(ctx context.Context, interval time.Duration, onErr func(error)) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := r.reload(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// reload re-reads the list if it changed since the last read.
func (r *Revocations) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		if r.seen != nil {
			empty := map[string]struct{}{}
			r.ids.Store(&empty)
			r.seen = nil
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read revocations: %w", err)
	}
	if r.seen != nil && os.SameFile(r.seen, fi) && r.seen.Size() == fi.Size() && r.seen.ModTime().Equal(fi.ModTime()) {
		return nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("read revocations: %w", err)
	}
	defer f.Close()
	ids, fi, err := readRevoked(f, r.path)
	if err != nil {
		return fmt.Errorf("read revocations: %w", err)
	}
	r.ids.Store(&ids)
	r.seen = fi
	return nil
}

// readRevoked reads the revocation list from f, which is at offset 0, and
// returns its ids and its FileInfo from before the read, so that a line
// appended during the read shows up as a change on the next poll. Only
// newline-terminated lines count, so a line being written is never read in
// part. A list that group or others may write is refused: they could erase
// a revocation.
func readRevoked(f *os.File, path string) (map[string]struct{}, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return nil, nil, fmt.Errorf("%s has mode %04o, writable by group or others; run `chmod 600 %s`", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRevokedSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxRevokedSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, maxRevokedSize)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	ids := map[string]struct{}{}
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		ids[fields[0]] = struct{}{}
	}
	return ids, fi, nil
}
