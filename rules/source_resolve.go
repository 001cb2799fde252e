package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"keyhole/secret"
)

// Defaults of a Loader whose fields are zero.
const (
	// DefaultParallel is how many sources a Loader reads at once.
	DefaultParallel = 8
	// DefaultResolveTimeout bounds the reading of every source of a rules
	// file. It exceeds the 10 s an exec: program may run.
	DefaultResolveTimeout = 30 * time.Second
)

// Loader loads rules files: it parses one (Parse, which does no I/O), then
// resolves it, reading every source the file names, in parallel under a
// bound and a timeout. The zero Loader reads env: and file: sources only.
type Loader struct {
	// Kinds reads the sources of each kind by name ("exec", "vault",
	// "store"); an entry for "env" or "file" replaces the built-in reader.
	// A source of a kind that has no entry and no built-in reader is
	// unreadable: a warning, and its secret is unavailable.
	Kinds map[string]Kind
	// Parallel bounds the sources read at once; 0 means DefaultParallel.
	Parallel int
	// Timeout bounds the reading of every source of one resolve; 0 means
	// DefaultResolveTimeout.
	Timeout time.Duration
	// Observe, when set, is called after every read with the source's kind
	// and the read's error (nil when it succeeded), for metrics.
	Observe func(kind string, err error)
}

// Kind reads the sources of one kind for a Loader. Read is called at load,
// reload and refresh, never on the request path, and from several
// goroutines at once.
type Kind interface {
	Read(ctx context.Context, src Source) (v secret.Value, expires time.Time, err error)
}

// ErrGone is wrapped by the error of a read that found the value deleted
// (a store entry removed): the last good value is dropped at once rather
// than served until it expires.
var ErrGone = errors.New("the value no longer exists")

// errNotRead is the error of a value that Parse decoded and nothing
// resolved.
var errNotRead = errors.New("the source has not been read (Parse reads no source; Load does)")

// SourceKind returns the kind of src: the part of its reference before
// the colon ("env", "file", "exec", "vault", "store").
func SourceKind(src Source) string {
	kind, _, _ := strings.Cut(src.String(), ":")
	return kind
}

// reading is the outcome of reading one source, kept in the Set so that a
// refresh reads again only the sources that are due.
type reading struct {
	kind     string
	value    secret.Value
	expires  time.Time // zero: the value does not expire
	err      error     // the last read's error; nil when it succeeded
	stale    bool      // value is the last good one, kept after err
	next     time.Time // when to read again; zero: at reload only
	failures int       // reads that failed in a row
	at       time.Time // when the read ended
}

// usable reports whether the reading has a value to serve.
func (r *reading) usable() bool { return r.err == nil || r.stale }

// maxBackoff bounds the wait between retries of a source that fails.
const maxBackoff = time.Minute

// backoff returns the wait before the retry that follows the n-th failure
// in a row: 1 s, 2 s, 4 s, ... up to maxBackoff.
func backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (ld *Loader) parallel() int {
	if ld.Parallel > 0 {
		return ld.Parallel
	}
	return DefaultParallel
}

func (ld *Loader) timeout() time.Duration {
	if ld.Timeout > 0 {
		return ld.Timeout
	}
	return DefaultResolveTimeout
}

// resolve reads the sources queued in set and hands each outcome to its
// field. prev holds the readings of the set this one replaces; a reading
// for which due is false is taken from it without reading. A read that
// fails keeps prev's good value while it lives: always on a refresh
// (keepAll), and on a reload only for values that expire (a value without
// expiry read again at reload is what the operator asked for).
func (ld *Loader) resolve(ctx context.Context, set *Set, prev map[string]*reading, due func(*reading) bool, keepAll bool) {
	ctx, cancel := context.WithTimeout(ctx, ld.timeout())
	defer cancel()
	set.readings = make(map[string]*reading, len(set.pending))
	// vault: sources log in with credentials that are sources themselves,
	// so they are read in a second round.
	var first, second []pendingRead
	for _, r := range set.pending {
		if SourceKind(r.src) == "vault" {
			second = append(second, r)
		} else {
			first = append(first, r)
		}
	}
	for _, round := range [][]pendingRead{first, second} {
		ld.readRound(ctx, set, round, prev, due, keepAll)
		for _, r := range round {
			rd := set.readings[r.src.String()]
			if cerr := r.checkValue(rd); cerr != nil {
				r.store(secret.Value{}, cerr)
			} else if rd.usable() {
				r.store(rd.value, nil)
				if r.expire != nil {
					r.expire(rd.expires)
				}
			} else {
				r.store(secret.Value{}, rd.err)
			}
		}
	}
	set.warnings(set.pending)
	for _, rd := range set.readings {
		if !rd.next.IsZero() && (set.refresh.IsZero() || rd.next.Before(set.refresh)) {
			set.refresh = rd.next
		}
	}
}

// readRound reads the distinct sources of reads that are due, at most
// Parallel at once, and records every reading in set.
func (ld *Loader) readRound(ctx context.Context, set *Set, reads []pendingRead, prev map[string]*reading, due func(*reading) bool, keepAll bool) {
	type job struct {
		key  string
		src  Source
		prev *reading
	}
	var jobs []job
	for _, r := range reads {
		key := r.src.String()
		if _, seen := set.readings[key]; seen {
			continue
		}
		p := prev[key]
		if p != nil && due != nil && !due(p) {
			set.readings[key] = p
			continue
		}
		set.readings[key] = nil // claimed: read once below
		jobs = append(jobs, job{key, r.src, p})
	}
	out := make([]*reading, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, ld.parallel())
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = ld.read(ctx, j.src, j.prev, keepAll)
		}()
	}
	wg.Wait()
	for i, j := range jobs {
		set.readings[j.key] = out[i]
	}
}

// read reads src once. prev is its last reading, if any.
func (ld *Loader) read(ctx context.Context, src Source, prev *reading, keepAll bool) *reading {
	kind := SourceKind(src)
	var v secret.Value
	var expires time.Time
	var err error
	k, viaKind := ld.Kinds[kind]
	if viaKind && k != nil {
		v, expires, err = k.Read(ctx, src)
	} else {
		v, expires, err = src.Read(ctx)
	}
	now := time.Now()
	if err == nil && !expires.IsZero() && !expires.After(now) {
		err = fmt.Errorf("%s: the value had expired when it was read", src)
	}
	if ld.Observe != nil {
		ld.Observe(kind, err)
	}
	rd := &reading{kind: kind, at: now}
	if err == nil {
		rd.value, rd.expires = v, expires
		if !expires.IsZero() {
			rd.next = refreshAt(now, expires)
		}
		return rd
	}
	rd.err, rd.failures = err, 1
	if prev != nil {
		rd.failures = prev.failures + 1
	}
	gone := errors.Is(err, ErrGone)
	if viaKind && !gone {
		// The built-in readers are not retried (a file is read again when
		// it changes, the environment does not change); a kind's sources
		// are, waiting longer after each failure.
		rd.next = now.Add(backoff(rd.failures))
	}
	if prev != nil && prev.usable() && !gone && (keepAll || !prev.expires.IsZero()) && !expired(prev.expires) {
		rd.value, rd.expires, rd.stale = prev.value, prev.expires, true
		if !rd.expires.IsZero() && (rd.next.IsZero() || rd.expires.Before(rd.next)) {
			rd.next = rd.expires // then the value is gone from the set
		}
	}
	return rd
}

// warnings records in set.Warnings what went wrong reading reads, and
// values too short or shared to scrub, in line order.
func (set *Set) warnings(reads []pendingRead) {
	var warns Errors
	warnf := func(r pendingRead, format string, args ...any) {
		msg := strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(fmt.Sprintf(format, args...))
		warns = append(warns, &Error{File: set.File, Line: r.line, Field: r.field, Msg: msg})
	}
	holders := make(map[string]string) // secret value → the secret holding it
	for _, r := range reads {
		rd := set.readings[r.src.String()]
		if rd.err != nil {
			if rd.stale {
				warnf(r, "%v; serving the last good value%s", rd.err, until(rd.expires))
			} else {
				warnf(r, "%v", rd.err)
				continue
			}
		}
		if cerr := r.checkValue(rd); cerr != nil {
			warnf(r, "%v", cerr)
			continue
		}
		name, isSecret := strings.CutSuffix(r.field, ".source")
		if !isSecret {
			continue
		}
		// Scrubbing responses replaces every occurrence of a value by its
		// placeholder: a short value occurs by chance, and a value two
		// secrets share cannot say which placeholder to put back.
		if rd.value.Len() < minScrubLen {
			warnf(r, "%s: the value is shorter than %d bytes; scrubbing it from responses may garble them", r.src, minScrubLen)
		}
		if prev, dup := holders[rd.value.Reveal()]; dup {
			warnf(r, "%s: holds the same value as %s", r.src, prev)
			continue
		}
		holders[rd.value.Reveal()] = name
	}
	slices.SortStableFunc(warns, byLine)
	for _, w := range warns {
		set.Warnings = append(set.Warnings, w.Error())
	}
}

// until says until when a kept value is served.
func until(expires time.Time) string {
	if expires.IsZero() {
		return ""
	}
	return " until " + expires.UTC().Format(time.RFC3339)
}

// minScrubLen is the length below which a secret's value is likely to occur
// by chance in a response.
const minScrubLen = 8

// checkValue runs r's check on a usable reading; nil when r has no check
// or the reading holds no value.
func (r pendingRead) checkValue(rd *reading) error {
	if r.check == nil || !rd.usable() {
		return nil
	}
	if err := r.check(rd.value); err != nil {
		return fmt.Errorf("%s: %w", r.src, err)
	}
	return nil
}
