package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"
)

// DefaultPoll is how often a Follower looks for new lines, truncation and
// rotation when its Poll is zero.
const DefaultPoll = 200 * time.Millisecond

// Follower follows an audit log as it grows, like "tail -F": it polls the
// file rather than using inotify, so it needs no dependency and works on
// any file system. The zero Follower is ready to use. A Follower must not
// be copied after first use; one Follower may run one Follow at a time.
//
// It keeps following across the two ways logs are rotated:
//   - truncation (copytruncate): when the file becomes shorter than what
//     has been read, reading starts again at its beginning;
//   - rename and recreate: when the path names a different file, the rest
//     of the old file is read, then the new file from its beginning.
//
// A truncation that the file outgrows again within one poll is not seen;
// "tail" has the same limit.
type Follower struct {
	// Poll is how often to look for changes; zero means DefaultPoll.
	Poll time.Duration
	// Backlog is how many of the last lines already in the file Follow
	// delivers first when it does not start from the beginning (like
	// "tail -n"); zero means only lines written after Follow starts. A
	// malformed line counts as a line here too.
	Backlog int

	skipped atomic.Int64
}

// Follow follows the audit log at path with a zero Follower, which keeps
// its count of skipped lines to itself; see Follower.Follow.
func Follow(ctx context.Context, path string, fromStart bool, fn func(Entry) error) error {
	return new(Follower).Follow(ctx, path, fromStart, fn)
}

// Skipped returns how many lines Follow has skipped because they did not
// parse, were longer than MaxLine, or were cut short by a truncation. It
// may be called while Follow runs.
func (fw *Follower) Skipped() int64 {
	return fw.skipped.Load()
}

// Follow calls fn with each entry of the audit log at path: from its first
// line when fromStart is set, else from its end (less Backlog lines), and
// then with each entry appended, until ctx is done. A last line without
// its newline is waited for, not parsed half-written. The file must exist
// when Follow starts; later, while a rotation has removed it, Follow waits
// for it to reappear.
//
// Follow returns nil when ctx is done, fn's first error unwrapped, or an
// error reading the file.
func (fw *Follower) Follow(ctx context.Context, path string, fromStart bool, fn func(Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit: follow: %w", err)
	}
	defer func() { f.Close() }()
	var off int64
	if !fromStart {
		if off, err = tailOffset(f, fw.Backlog); err != nil {
			return fmt.Errorf("audit: follow: %w", err)
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("audit: follow: %w", err)
	}
	lr := newLineReader(f)
	lr.n = off

	poll := fw.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := fw.drain(ctx, lr, fn); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		next, err := fw.changed(f, path, lr)
		if err != nil {
			return fmt.Errorf("audit: follow: %w", err)
		}
		if next == nil {
			continue
		}
		// Rotated: the writer may have added to the old file since the last
		// read; finish it before moving on.
		if err := fw.drain(ctx, lr, fn); err != nil {
			next.Close()
			return err
		}
		line, err := lr.last()
		f.Close()
		f = next
		lr.reset(f, 0)
		if err := fw.deliver(line, err, fn); err != nil {
			return err
		}
	}
}

// changed looks at the file behind f and the file at path. On truncation
// it rewinds f and lr itself; on rotation it returns the new file, opened.
func (fw *Follower) changed(f *os.File, path string, lr *lineReader) (*os.File, error) {
	cur, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if cur.Size() < lr.n {
		if _, err := lr.last(); err != io.EOF {
			fw.skipped.Add(1) // a line cut short by the truncation
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		lr.reset(f, 0)
		return nil, nil
	}
	at, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // moved away and not yet recreated: keep reading the old file
	}
	if err != nil {
		return nil, err
	}
	if os.SameFile(cur, at) {
		return nil, nil
	}
	next, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // gone again; look at the next poll
	}
	return next, err
}

// drain delivers every whole line that can be read now.
func (fw *Follower) drain(ctx context.Context, lr *lineReader, fn func(Entry) error) error {
	for ctx.Err() == nil {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err := fw.deliver(line, err, fn); err != nil {
			return err
		}
	}
	return nil
}

// deliver parses a line that the lineReader returned with err and calls fn
// with its entry; a line that is too long or does not parse is counted.
func (fw *Follower) deliver(line []byte, err error, fn func(Entry) error) error {
	switch {
	case err == io.EOF:
		return nil
	case errors.Is(err, errLongLine):
		fw.skipped.Add(1)
		return nil
	case err != nil:
		return fmt.Errorf("audit: follow: %w", err)
	}
	e, err := ParseEntry(line)
	if err != nil {
		fw.skipped.Add(1)
		return nil
	}
	return fn(e)
}

// tailOffset returns where the last n whole lines of f begin: the offset
// just past the (n+1)th newline from the end, or 0 when there are fewer.
// With n zero that is the end of the last whole line, so that a line being
// written is read once it is finished.
func tailOffset(f *os.File, n int) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	seen := 0
	for end := fi.Size(); end > 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			if seen++; seen > n {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}
