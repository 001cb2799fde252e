package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"keyhole/store"
)

// Files of the FileState in the state dir.
const (
	// StateFile holds the records, as JSON, mode 0600.
	StateFile = "handoff.json"
	// stateLock is the writers' flock.
	stateLock = "handoff.lock"
)

// Bounds of a FileState.
const (
	// MaxLive bounds the shares that are ready, and apart from them the
	// intakes that are pending: a share holds up to store.MaxValueSize of
	// ciphertext, so this also bounds the file.
	MaxLive = 256
	// MaxRecords bounds every record kept, finished ones included.
	MaxRecords = 4096
	// MaxCiphertextBytes bounds the ciphertexts of the open shares
	// together: every change rewrites the whole file.
	MaxCiphertextBytes = 8 << 20
	// Forget is how long a record is kept after its expiry, so that its
	// page can still say "expired" or "already viewed" rather than "not
	// found".
	Forget = 24 * time.Hour
	// maxStateFile bounds the file read back.
	maxStateFile = 2*MaxCiphertextBytes + MaxRecords*4096
)

// ErrFull is returned by PutShare and PutIntake when the state holds
// MaxLive live records of that kind.
var ErrFull = errors.New("handoff: too many shares or intakes are open; wait for some to be viewed or expire")

// FileState is the State kept in a file of the state dir, for one host:
// every change takes an flock, reads the file, and writes it back with
// fsync and rename, so that several keyhole processes sharing the state
// dir see one state and ClaimShare and FinishIntake are atomic across
// them.
//
// The file is mode 0600 in the state dir (0700) and is not sealed: it
// holds share ciphertexts (unreadable without the links' keys, which
// keyhole never keeps), capability hashes (not capabilities), and the
// private keys of pending intakes. A private key opens only an answer,
// which keyhole receives over TLS and never writes anywhere; reading the
// file alone reveals no value.
type FileState struct {
	dir  string
	path string
	// Now is the clock of Get and List, which report records past their
	// expiry as expired; nil means time.Now.
	Now func() time.Time
	// MaxBytes bounds the open shares' ciphertexts together; 0 means
	// MaxCiphertextBytes, and more is MaxCiphertextBytes too.
	MaxBytes int

	mu sync.Mutex // serializes this process's writers; flock the others
}

// stateDoc is the file's contents.
type stateDoc struct {
	Shares  map[string]*Share  `json:"shares"`
	Intakes map[string]*Intake `json:"intakes"`
}

// OpenFileState opens (creating the directory if needed) the state in dir.
func OpenFileState(dir string) (*FileState, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open handoff state: %w", err)
	}
	return &FileState{dir: dir, path: filepath.Join(dir, StateFile)}, nil
}

func (f *FileState) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// PutShare implements State.
func (f *FileState) PutShare(_ context.Context, s Share) error {
	return f.update(func(d *stateDoc) error {
		if _, dup := d.Shares[s.ID]; dup {
			return fmt.Errorf("handoff: share %s already exists", s.ID)
		}
		if err := d.room(f.now(), func(d *stateDoc) int { return d.live(true) }); err != nil {
			return err
		}
		total := len(s.Ciphertext)
		for _, o := range d.Shares {
			total += len(o.Ciphertext)
		}
		if limit := f.MaxBytes; total > MaxCiphertextBytes || limit > 0 && total > limit {
			return ErrFull
		}
		s.Status = StatusReady
		d.Shares[s.ID] = &s
		return nil
	})
}

// GetShare implements State.
func (f *FileState) GetShare(_ context.Context, id string) (Share, error) {
	d, err := f.read()
	if err != nil {
		return Share{}, err
	}
	s, ok := d.Shares[id]
	if !ok {
		return Share{}, ErrNotFound
	}
	expireShare(s, f.now())
	return *s, nil
}

// ClaimShare implements State.
func (f *FileState) ClaimShare(_ context.Context, id string, now time.Time) (Share, error) {
	var out Share
	err := f.update(func(d *stateDoc) error {
		s, ok := d.Shares[id]
		if !ok {
			return ErrNotFound
		}
		expireShare(s, now)
		if s.Status != StatusReady {
			return &GoneError{Status: s.Status}
		}
		out = *s
		if s.ViewsLeft--; s.ViewsLeft <= 0 {
			s.ViewsLeft, s.Status, s.Ciphertext = 0, StatusViewed, nil
		}
		return nil
	})
	return out, err
}

// RevokeShare implements State.
func (f *FileState) RevokeShare(_ context.Context, id string) error {
	return f.update(func(d *stateDoc) error {
		s, ok := d.Shares[id]
		if !ok {
			return ErrNotFound
		}
		s.Status, s.Ciphertext, s.ViewsLeft = StatusRevoked, nil, 0
		return nil
	})
}

// ListShares implements State.
func (f *FileState) ListShares(_ context.Context) ([]Share, error) {
	d, err := f.read()
	if err != nil {
		return nil, err
	}
	now := f.now()
	out := make([]Share, 0, len(d.Shares))
	for _, s := range d.Shares {
		expireShare(s, now)
		c := *s
		c.Ciphertext = nil
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Share) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// PutIntake implements State.
func (f *FileState) PutIntake(_ context.Context, in Intake) error {
	return f.update(func(d *stateDoc) error {
		if _, dup := d.Intakes[in.ID]; dup {
			return fmt.Errorf("handoff: intake %s already exists", in.ID)
		}
		if err := d.room(f.now(), func(d *stateDoc) int { return d.live(false) }); err != nil {
			return err
		}
		in.Status = StatusPending
		d.Intakes[in.ID] = &in
		return nil
	})
}

// GetIntake implements State.
func (f *FileState) GetIntake(_ context.Context, id string) (Intake, error) {
	d, err := f.read()
	if err != nil {
		return Intake{}, err
	}
	in, ok := d.Intakes[id]
	if !ok {
		return Intake{}, ErrNotFound
	}
	expireIntake(in, f.now())
	return *in, nil
}

// FinishIntake implements State.
func (f *FileState) FinishIntake(_ context.Context, id string, status Status, granted []string, now time.Time) (Intake, error) {
	if status != StatusFulfilled && status != StatusDeclined {
		return Intake{}, fmt.Errorf("handoff: finish intake: bad status %q", status)
	}
	var out Intake
	err := f.update(func(d *stateDoc) error {
		in, ok := d.Intakes[id]
		if !ok {
			return ErrNotFound
		}
		expireIntake(in, now)
		if in.Status != StatusPending {
			return &GoneError{Status: in.Status}
		}
		out = *in
		in.Status, in.PrivateKey, in.GrantedHosts = status, nil, slices.Clone(granted)
		return nil
	})
	return out, err
}

// Sweep implements State.
func (f *FileState) Sweep(_ context.Context, now time.Time) (shares, intakes []string, err error) {
	err = f.update(func(d *stateDoc) error {
		shares, intakes = d.sweep(now)
		return nil
	})
	return shares, intakes, err
}

// sweep marks what expired and forgets what expired long ago.
func (d *stateDoc) sweep(now time.Time) (shares, intakes []string) {
	for id, s := range d.Shares {
		if expireShare(s, now) {
			shares = append(shares, id)
		}
		if now.Sub(s.Expires) > Forget {
			delete(d.Shares, id)
		}
	}
	for id, in := range d.Intakes {
		if expireIntake(in, now) {
			intakes = append(intakes, id)
		}
		if now.Sub(in.Expires) > Forget {
			delete(d.Intakes, id)
		}
	}
	slices.Sort(shares)
	slices.Sort(intakes)
	return shares, intakes
}

// room makes room for one more record: it forgets records that expired
// long ago (never marking any expired, which is Sweep's to report), and
// refuses when live(d) records of the kind are open or the state is full.
func (d *stateDoc) room(now time.Time, live func(*stateDoc) int) error {
	for id, s := range d.Shares {
		if now.Sub(s.Expires) > Forget {
			delete(d.Shares, id)
		}
	}
	for id, in := range d.Intakes {
		if now.Sub(in.Expires) > Forget {
			delete(d.Intakes, id)
		}
	}
	if live(d) >= MaxLive || len(d.Shares)+len(d.Intakes) >= MaxRecords {
		return ErrFull
	}
	return nil
}

// live counts the ready shares (shares true) or the pending intakes.
func (d *stateDoc) live(shares bool) int {
	n := 0
	if shares {
		for _, s := range d.Shares {
			if s.Status == StatusReady {
				n++
			}
		}
		return n
	}
	for _, in := range d.Intakes {
		if in.Status == StatusPending {
			n++
		}
	}
	return n
}

// expireShare marks s expired if it is ready past its expiry, dropping its
// ciphertext, and reports whether it did.
func expireShare(s *Share, now time.Time) bool {
	if s.Status != StatusReady || now.Before(s.Expires) {
		return false
	}
	s.Status, s.Ciphertext, s.ViewsLeft = StatusExpired, nil, 0
	return true
}

// expireIntake marks in expired if it is pending past its expiry, dropping
// its private key, and reports whether it did.
func expireIntake(in *Intake, now time.Time) bool {
	if in.Status != StatusPending || now.Before(in.Expires) {
		return false
	}
	in.Status, in.PrivateKey = StatusExpired, nil
	return true
}

// read reads the file; a missing file is an empty state.
func (f *FileState) read() (*stateDoc, error) {
	d := &stateDoc{Shares: map[string]*Share{}, Intakes: map[string]*Intake{}}
	data, err := store.ReadLimited(f.path, maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("handoff state: %w", err)
	}
	if err := json.Unmarshal(data, d); err != nil {
		return nil, fmt.Errorf("handoff state: %s: not valid: %w", f.path, err)
	}
	if d.Shares == nil {
		d.Shares = map[string]*Share{}
	}
	if d.Intakes == nil {
		d.Intakes = map[string]*Intake{}
	}
	return d, nil
}

// update changes the state under the writers' lock and writes it back
// atomically; change's error leaves the file as it was.
func (f *FileState) update(change func(*stateDoc) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	d, err := f.read()
	if err != nil {
		return err
	}
	if err := change(d); err != nil {
		return err
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("handoff state: %w", err)
	}
	if err := store.WriteAtomic(f.path, data); err != nil {
		return fmt.Errorf("handoff state: %s: %w", f.path, err)
	}
	return nil
}

// lock takes the writers' flock.
func (f *FileState) lock() (func(), error) {
	unlock, err := store.Lock(filepath.Join(f.dir, stateLock))
	if err != nil {
		return nil, fmt.Errorf("handoff state: lock: %w", err)
	}
	return unlock, nil
}

var _ State = (*FileState)(nil)
