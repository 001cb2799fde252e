package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// FlushInterval is the longest a record waits in a File's buffer before it
// is written. Records are written in batches, so that the audit log costs
// one write for many requests rather than one each.
const FlushInterval = 20 * time.Millisecond

// flushSize is the buffered bytes that make a File write at once.
const flushSize = 64 << 10

// Open returns a Logger for the KEYHOLE_AUDIT_LOG setting: "-" (or "") is
// stdout, anything else a file that records are appended to, created 0640
// if missing. Records reach their destination within FlushInterval, and at
// once when the returned File is flushed or closed (keyhole closes it when
// it stops).
//
// Its lines are not chained; keyhole serve uses OpenChained.
func Open(path string, stdout io.Writer) (*Logger, *File, error) {
	f, err := openFile(path, stdout)
	if err != nil {
		return nil, nil, err
	}
	return New(f), f, nil
}

// OpenChained is Open for a log whose every line carries "prev" and
// "hash" (see Verify), under the key in stateDir's KeyFile, created on
// first use. The chain continues where the last line keyhole wrote left
// it: across Reopen, and across restarts through stateDir's ChainFile,
// which the File keeps up to date as batches reach the log.
func OpenChained(path string, stdout io.Writer, stateDir string) (*Logger, *File, error) {
	key, err := LoadOrCreateKey(stateDir)
	if err != nil {
		return nil, nil, err
	}
	stateFile := filepath.Join(stateDir, ChainFile)
	if path == "-" {
		path = ""
	}
	prev, err := chainStart(stateFile, path)
	if err != nil {
		return nil, nil, err
	}
	saver, err := openChainSaver(stateFile)
	if err != nil {
		return nil, nil, err
	}
	f, err := openFile(path, stdout)
	if err != nil {
		saver.close()
		return nil, nil, err
	}
	f.saver = saver
	return NewChained(f, key, prev), f, nil
}

func openFile(path string, stdout io.Writer) (*File, error) {
	f := &File{path: path, w: stdout}
	if path == "-" {
		f.path = ""
	}
	if err := f.Reopen(); err != nil {
		return nil, err
	}
	f.timer = time.AfterFunc(time.Hour, f.Flush)
	f.timer.Stop()
	return f, nil
}

// File is the buffered destination of an audit log. It can be reopened, so
// that logrotate can move the file away and signal keyhole (SIGHUP) to
// start a new one. Use Open to make one.
type File struct {
	path string // "" for stdout

	// mu guards the buffer that records are appended to; wmu serializes
	// writes to the destination. A flush takes the buffer under mu and
	// writes it under wmu only, taking wmu before releasing mu so that
	// batches reach the file in order: records keep being appended, into
	// the spare buffer, while a batch is written.
	mu     sync.Mutex
	buf    []byte
	spare  []byte
	armed  bool // the timer will flush buf
	closed bool
	timer  *time.Timer

	wmu   sync.Mutex
	w     io.Writer   // the destination
	f     *os.File    // the file, when path is set
	saver *chainSaver // records each batch's last hash; nil when not chained

	failed atomic.Int64
}

// Write buffers p, one whole record. It fails only after Close.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return 0, os.ErrClosed
	}
	f.buf = append(f.buf, p...)
	if len(f.buf) >= flushSize {
		f.flushUnlock()
		return len(p), nil
	}
	if !f.armed {
		f.armed = true
		f.timer.Reset(FlushInterval)
	}
	f.mu.Unlock()
	return len(p), nil
}

// Flush writes the buffered records now.
func (f *File) Flush() {
	f.mu.Lock()
	f.flushUnlock()
}

// flushUnlock takes the buffer, releases mu and writes the buffer. mu must
// be held.
func (f *File) flushUnlock() {
	f.armed = false
	batch := f.buf
	f.buf, f.spare = f.spare[:0], nil
	f.wmu.Lock()
	f.mu.Unlock()
	if len(batch) > 0 && f.w != nil {
		if _, err := f.w.Write(batch); err != nil {
			f.failed.Add(1)
		} else if f.saver != nil && f.saver.saved(batch) != nil {
			f.failed.Add(1)
		}
	}
	// wmu goes before mu is taken again: a Write holding mu may be
	// waiting for wmu.
	f.wmu.Unlock()
	if cap(batch) > 4*flushSize {
		return // let a burst's buffer go
	}
	f.mu.Lock()
	if f.spare == nil {
		f.spare = batch[:0]
	}
	f.mu.Unlock()
}

// Failures returns how many batches of records could not be written.
func (f *File) Failures() int64 { return f.failed.Load() }

// Reopen writes what is buffered, then opens the path again (creating it
// if rotation moved it away) and closes the previous file. For stdout it
// only flushes.
func (f *File) Reopen() error {
	var nf *os.File
	if f.path != "" {
		var err error
		nf, err = os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("audit: open log: %w", err)
		}
	}
	f.mu.Lock()
	f.flushUnlock()
	if nf == nil {
		return nil
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	old := f.f
	f.f, f.w = nf, nf
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close writes what is buffered and closes the file (not stdout). Later
// writes fail.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	if f.timer != nil {
		f.timer.Stop()
	}
	f.flushUnlock()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	var err error
	if f.saver != nil {
		err = f.saver.close()
	}
	if f.f != nil {
		err = errors.Join(f.f.Close(), err)
	}
	return err
}
