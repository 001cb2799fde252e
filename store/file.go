package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"keyhole/secret"
)

// File is the store kept in a file of the state dir (see the package doc).
type File struct {
	// PollInterval is how often Watch looks at the file; 0 means 250ms.
	PollInterval time.Duration

	path  string
	dir   string
	keys  keys
	fpKey []byte

	mu     sync.Mutex
	stamp  fileStamp
	cached map[string]fileEntry // as of stamp
}

// Open opens the store in the state dir dir, creating the directory and
// the key files it needs. keyText is the value of KEYHOLE_STORE_KEY; when
// it is empty the key is dir's store.key. Open reads no entry: a store file
// that cannot be opened is reported by the calls that read it.
func Open(dir, keyText string) (*File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	k, err := loadKeys(dir, keyText, true)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	fp, err := loadOrCreateKeyFile(filepath.Join(dir, FingerprintKeyFile), true)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &File{path: filepath.Join(dir, DataFile), dir: dir, keys: k, fpKey: fp}, nil
}

// OpenExisting opens the store in dir without creating anything: a
// missing key file is an error (the store has never been written here).
// `keyhole check` uses it.
func OpenExisting(dir, keyText string) (*File, error) {
	k, err := loadKeys(dir, keyText, false)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	fp, err := loadOrCreateKeyFile(filepath.Join(dir, FingerprintKeyFile), false)
	if err != nil {
		fp = nil // only List needs it
	}
	return &File{path: filepath.Join(dir, DataFile), dir: dir, keys: k, fpKey: fp}, nil
}

// Path returns the store file's path.
func (f *File) Path() string { return f.path }

// fileEntry is an entry as sealed in the file.
type fileEntry struct {
	Name    string    `json:"name"`
	Value   string    `json:"value"`
	Origin  Origin    `json:"origin"`
	Owner   string    `json:"owner,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Expires time.Time `json:"expires,omitzero"`
	Policy  *Policy   `json:"policy,omitempty"`
}

type fileData struct {
	Version int         `json:"version"`
	Entries []fileEntry `json:"entries"`
}

// Get returns the entry named name.
func (f *File) Get(_ context.Context, name string) (Entry, error) {
	m, err := f.load()
	if err != nil {
		return Entry{}, err
	}
	fe, ok := m[name]
	if !ok || !fe.Expires.IsZero() && !time.Now().Before(fe.Expires) {
		return Entry{}, fmt.Errorf("store:%s: %w", name, ErrNotFound)
	}
	return Entry{Name: fe.Name, Value: secret.FromString(fe.Value), Origin: fe.Origin, Owner: fe.Owner,
		Created: fe.Created, Updated: fe.Updated, Expires: fe.Expires, Policy: fe.Policy}, nil
}

// Put stores e under the lock.
func (f *File) Put(_ context.Context, e Entry) error {
	if e.Origin == "" {
		e.Origin = OriginSet
	}
	if err := checkEntry(e); err != nil {
		return fmt.Errorf("store: %s: %w", e.Name, err)
	}
	return f.update(func(m map[string]fileEntry) error {
		now := time.Now().UTC()
		created := now
		if old, ok := m[e.Name]; ok {
			created = old.Created
		}
		m[e.Name] = fileEntry{Name: e.Name, Value: e.Value.Reveal(), Origin: e.Origin, Owner: e.Owner,
			Created: created, Updated: now, Expires: e.Expires, Policy: e.Policy}
		return nil
	})
}

// Delete removes the entry named name under the lock.
func (f *File) Delete(_ context.Context, name string) error {
	return f.update(func(m map[string]fileEntry) error {
		if _, ok := m[name]; !ok {
			return fmt.Errorf("store:%s: %w", name, ErrNotFound)
		}
		delete(m, name)
		return nil
	})
}

// List describes every entry, expired ones included, sorted by name.
func (f *File) List(context.Context) ([]Info, error) {
	m, err := f.load()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(m))
	for _, fe := range m {
		out = append(out, Info{Name: fe.Name, Origin: fe.Origin, Owner: fe.Owner, Created: fe.Created,
			Updated: fe.Updated, Expires: fe.Expires, Policy: fe.Policy, Fingerprint: fingerprint(f.fpKey, fe.Value)})
	}
	slices.SortFunc(out, func(a, b Info) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// Watch polls the file's metadata and sends on the channel when it
// changes.
func (f *File) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	every := f.PollInterval
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	last := stampOf(f.path) // now, not when the goroutine first runs
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if now := stampOf(f.path); now != last {
				last = now
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// maxFileSize bounds the store file: entries of at most MaxValueSize, and
// far more of them than a store holds.
const maxFileSize = 64 << 20

// load returns the entries as the file holds them now; a missing file is an
// empty store.
func (f *File) load() (map[string]fileEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := stampOf(f.path)
	if f.cached != nil && st == f.stamp && st.exists {
		return f.cached, nil
	}
	m, err := f.read()
	if err != nil {
		return nil, err
	}
	f.stamp, f.cached = st, m
	return m, nil
}

// read reads and opens the file.
func (f *File) read() (map[string]fileEntry, error) {
	data, err := ReadLimited(f.path, maxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]fileEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	entries, err := open(data, f.keys)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", f.path, err)
	}
	m := make(map[string]fileEntry, len(entries))
	for _, e := range entries {
		m[e.Name] = e
	}
	return m, nil
}

// update changes the entries under the writers' lock and writes them back
// atomically.
func (f *File) update(change func(map[string]fileEntry) error) error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := f.read() // never the cache: another writer may have just renamed
	if err != nil {
		return err
	}
	if err := change(cur); err != nil {
		return err
	}
	entries := make([]fileEntry, 0, len(cur))
	for _, e := range cur {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b fileEntry) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	sealed, err := seal(entries, f.keys)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := writeAtomic(f.path, sealed); err != nil {
		return fmt.Errorf("store: %s: %w", f.path, err)
	}
	return nil
}

// lock takes the writers' lock, an flock on store.lock.
func (f *File) lock() (func(), error) {
	unlock, err := Lock(filepath.Join(f.dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	return unlock, nil
}

// writeAtomic writes data to a temporary file beside path, fsyncs it,
// renames it over path and fsyncs the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a failure; after the rename it is gone
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// errWrongKey says that the key from "from" did not seal the file.
func errWrongKey(from string) error {
	if from == KeyEnv {
		return fmt.Errorf("the file was sealed under a different key than %s; refusing it", KeyEnv)
	}
	return fmt.Errorf("the file was sealed under a different key than the one in %s (is %s meant to be set?); refusing it", from, KeyEnv)
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	exists bool
	size   int64
	mtime  time.Time
	ino    uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

var _ Store = (*File)(nil)
