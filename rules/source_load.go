package rules

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"
)

// LoadData is Load for the contents data of the rules file at path.
func LoadData(path string, data []byte) (*Set, error) {
	return (&Loader{}).LoadData(context.Background(), path, data, nil)
}

// Load is the package's Load with ld's source kinds. prev, when not nil, is
// the set this one replaces: a value that expires and cannot be read again
// now is kept from it while it lives.
func (ld *Loader) Load(ctx context.Context, path string, prev *Set) (*Set, error) {
	// Stamp the files before reading them, so that a Watcher started
	// later still sees a change made after this read.
	rulesStamp := stamp(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	set, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	set.stamps = map[string]fileStamp{path: rulesStamp}
	for _, p := range set.SourceFiles() {
		set.stamps[p] = stamp(p)
	}
	ld.resolve(ctx, set, prev.readingsOrNil(), nil, false)
	return set, nil
}

// LoadData is Load for the contents data of the rules file at path.
func (ld *Loader) LoadData(ctx context.Context, path string, data []byte, prev *Set) (*Set, error) {
	set, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	ld.resolve(ctx, set, prev.readingsOrNil(), nil, false)
	return set, nil
}

// Refresh returns a new set with the rules of prev and its values, except
// those that are due to be read again (about to expire, or retried after a
// failure) and every source of the kinds named, which it reads again. A
// read that fails keeps the last good value while it lives. Refresh reads
// neither the rules file nor sources that are not due.
func (ld *Loader) Refresh(ctx context.Context, prev *Set, kinds ...string) *Set {
	now := time.Now()
	return ld.rebuild(ctx, prev, prev.readings, func(r *reading) bool {
		return slices.Contains(kinds, r.kind) || !r.next.IsZero() && !now.Before(r.next)
	})
}

// refreshKinds is Refresh for the sources of kinds only.
func (ld *Loader) refreshKinds(ctx context.Context, prev *Set, kinds ...string) *Set {
	return ld.rebuild(ctx, prev, prev.readings, func(r *reading) bool { return slices.Contains(kinds, r.kind) })
}

// merge returns current with the readings of fresh that ended later than
// its own (fresh was refreshed from an older set while current took its
// place), reading nothing.
func (ld *Loader) merge(ctx context.Context, current, fresh *Set) *Set {
	readings := maps.Clone(current.readings)
	for k, r := range fresh.readings {
		if c, ok := readings[k]; ok && r.at.After(c.at) {
			readings[k] = r
		}
	}
	return ld.rebuild(ctx, current, readings, func(*reading) bool { return false })
}

// rebuild parses prev's rules again and resolves them from readings,
// reading the sources for which due is true.
func (ld *Loader) rebuild(ctx context.Context, prev *Set, readings map[string]*reading, due func(*reading) bool) *Set {
	set, err := Parse(prev.File, prev.data)
	if err != nil {
		return prev // cannot happen: prev was parsed from the same bytes
	}
	set.stamps = prev.stamps
	ld.resolve(ctx, set, readings, due, true)
	return set
}

// readingsOrNil returns the readings of s, or nil when s is nil.
func (s *Set) readingsOrNil() map[string]*reading {
	if s == nil {
		return nil
	}
	return s.readings
}
