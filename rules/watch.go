package rules

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultWatchInterval is how often a Watcher looks at its files when its
// Interval is not positive: often enough that a change takes effect within a
// second.
const DefaultWatchInterval = 250 * time.Millisecond

// Watcher reloads a rules file when it changes, when one of its file:
// sources changes (so that a rotated secret takes effect without a restart),
// when a value is about to expire (see Set.RefreshAt), or when asked to. It polls the files' metadata rather than relying on
// filesystem notifications, so editors that replace files, configuration
// management that swaps symlinks, and files that appear after start (a
// source that was missing) are all seen.
type Watcher struct {
	// Path is the rules file.
	Path string
	// Interval is how often the files are looked at; 0 means
	// DefaultWatchInterval.
	Interval time.Duration
	// OnLoad is called with every newly loaded set.
	OnLoad func(*Set)
	// OnError is called with the error of a load that failed; the old set
	// stays in force.
	OnError func(error)
	// Loader loads the rules and reads their sources; nil means the zero
	// Loader (env: and file: sources only).
	Loader *Loader
	// OnRefresh is called with every set made by reading values again that
	// were about to expire, that failed, or whose kind reported a change
	// (the rules are the same); nil means OnLoad.
	OnRefresh func(*Set)
	// Changes receives the name of a source kind whose values changed
	// ("store"): its sources are read again at once. Nil: none.
	Changes <-chan string

	seen map[string]fileStamp
	ctx  context.Context
}

// fileStamp identifies a version of a file.
type fileStamp struct {
	exists bool
	size   int64
	mtime  time.Time
	ino    uint64
	dev    uint64
	// target is the file the path resolves to through symlinks. A mounted
	// ConfigMap or Secret changes only by the kubelet's swap of a "..data"
	// symlink to a new timestamped directory: the path's own symlink never
	// changes, its target does (and is a new file, so ino differs too).
	target string
}

func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	s := fileStamp{exists: true, size: fi.Size(), mtime: fi.ModTime()}
	s.target, _ = filepath.EvalSymlinks(path)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino, s.dev = st.Ino, uint64(st.Dev)
	}
	return s
}

// Run watches until ctx ends. current is the set in force (its source files
// are watched from the start); a value on reload triggers a reload at once
// (keyhole sends one on SIGHUP).
//
// A change is loaded once the files have stayed as they are for one
// interval, so that a file written in several steps is read when it is
// complete rather than half-way (a prefix of a rules file can be valid YAML
// that means something else). A file still changing at every look is
// loaded after a few intervals anyway.
func (w *Watcher) Run(ctx context.Context, current *Set, reload <-chan struct{}) {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	w.seen = w.stamps(current)
	w.ctx = ctx
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var pending map[string]fileStamp // the changed files at the last look
	waited := 0
	// Values about to expire are read in the background, so that a slow
	// source (a program that hangs until its timeout) does not hold up
	// file and store changes; base is the set such a refresh started from.
	var base *Set
	refreshed := make(chan *Set, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			current, pending = w.load(current), nil
		case kind := <-w.Changes:
			current = w.refresh(current, kind)
		case fresh := <-refreshed:
			current, base = w.apply(current, base, fresh), nil
		case <-tick.C:
			if base == nil && w.refreshDue(current) {
				base = current
				go func(from *Set) { refreshed <- w.loader().Refresh(ctx, from) }(current)
			}
			now := w.current()
			switch {
			case maps.Equal(now, w.seen):
				pending, waited = nil, 0
			case pending == nil || !maps.Equal(now, pending) && waited < maxSettle:
				pending = now // changed since the last look: let it settle
				waited++
			default:
				current, pending, waited = w.load(current), nil, 0
			}
		}
	}
}

// refresh reads again every source of kinds in current, and puts the new
// set in force.
func (w *Watcher) refresh(current *Set, kinds ...string) *Set {
	if current == nil {
		return current
	}
	return w.put(current, w.loader().refreshKinds(w.ctx, current, kinds...))
}

// apply puts in force fresh, the outcome of a background refresh of base:
// as it is when current is still base, else merged into current.
func (w *Watcher) apply(current, base, fresh *Set) *Set {
	switch {
	case fresh == base || current == nil:
		return current
	case current != base:
		fresh = w.loader().merge(w.ctx, current, fresh)
	}
	return w.put(current, fresh)
}

// put reports set, which replaces current, and returns it.
func (w *Watcher) put(current, set *Set) *Set {
	if set == current {
		return current
	}
	switch {
	case w.OnRefresh != nil:
		w.OnRefresh(set)
	case w.OnLoad != nil:
		w.OnLoad(set)
	}
	return set
}

func (w *Watcher) loader() *Loader {
	if w.Loader != nil {
		return w.Loader
	}
	return &Loader{}
}

// refreshDue reports whether a value of current is about to expire and
// should be read again now.
func (w *Watcher) refreshDue(current *Set) bool {
	if current == nil {
		return false
	}
	at, ok := current.RefreshAt()
	return ok && !time.Now().Before(at)
}

// stamps returns the stamps of the rules file and of set's sources: as
// Load found them when it loaded set, else as they are now.
func (w *Watcher) stamps(set *Set) map[string]fileStamp {
	if set != nil && set.stamps != nil && set.File == w.Path {
		return maps.Clone(set.stamps)
	}
	m := map[string]fileStamp{w.Path: stamp(w.Path)}
	if set != nil {
		for _, p := range set.SourceFiles() {
			m[p] = stamp(p)
		}
	}
	return m
}

// maxSettle bounds the intervals a change waits for its files to settle.
const maxSettle = 4

// current returns the stamps the watched files have now.
func (w *Watcher) current() map[string]fileStamp {
	m := make(map[string]fileStamp, len(w.seen))
	for p := range w.seen {
		m[p] = stamp(p)
	}
	return m
}

// load reloads the rules and returns the set now in force. Load stamps the
// files before reading them, so a change made while loading is seen at the
// next tick; a failed load is reported once, not at every tick.
//
// An empty rules file is refused here, though Load accepts one: on reload
// it is almost always a file caught between truncation and writing (shell
// redirection, most editors' and tools' in-place writes), and loading it
// would drop every secret and open egress to default allow until the write
// completes. An operator who means "no rules" writes {}.
func (w *Watcher) load(current *Set) *Set {
	before := stamp(w.Path)
	var set *Set
	var err error
	if before.exists && before.size == 0 {
		err = Errors{{File: w.Path, Line: 1, Msg: "the file is empty (still being written?); the previous rules stay in force; write {} to run with no rules"}}
	} else {
		set, err = w.loader().Load(w.ctx, w.Path, current)
	}
	if err != nil {
		w.seen = w.stamps(current)
		w.seen[w.Path] = before
		if w.OnError != nil {
			w.OnError(err)
		}
		return current
	}
	w.seen = w.stamps(set)
	if w.OnLoad != nil {
		w.OnLoad(set)
	}
	return set
}
