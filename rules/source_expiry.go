package rules

import "time"

// expired reports whether a value that stops being valid at expires (zero:
// never) has stopped.
func expired(expires time.Time) bool {
	return !expires.IsZero() && !time.Now().Before(expires)
}

// refreshAt returns when a value read at readAt that expires at expires
// should be read again: after two thirds of its lifetime, so that a read
// that fails leaves a third of it for retries, and at least a second before
// it ends.
func refreshAt(readAt, expires time.Time) time.Time {
	life := expires.Sub(readAt)
	at := readAt.Add(life * 2 / 3)
	if latest := expires.Add(-time.Second); at.After(latest) {
		at = latest
	}
	if at.Before(readAt) {
		at = readAt
	}
	return at
}

// RefreshAt returns when the first of the set's values that expire should
// be read again, and false when none expires.
func (s *Set) RefreshAt() (time.Time, bool) { return s.refresh, !s.refresh.IsZero() }
