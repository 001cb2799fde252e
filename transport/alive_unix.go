//go:build linux || darwin || freebsd || netbsd || openbsd

package transport

import (
	"syscall"
)

// alive reports whether an idle connection is still usable: nothing has
// arrived on it since its last response, not even the upstream's close
// (a FIN, or a TLS alert). It peeks without blocking, one system call, so
// that a connection the upstream closed while it idled is never written
// to (a request on it could not be sent again unless idempotent).
func (c *conn) alive() bool { return c.probe(c.peek, &c.peekOK) }

// probe is alive with the peek function made by newPeek(ok).
func (c *conn) probe(peek func(fd uintptr) bool, ok *bool) bool {
	if c.raw == nil {
		return true
	}
	*ok = false
	return c.raw.Read(peek) == nil && *ok
}

// newPeek returns a non-blocking peek that reports in ok whether nothing
// is there to read. (Made once per user: a closure made at each check
// would be allocated at each check.)
func newPeek(ok *bool) func(fd uintptr) bool {
	var buf [1]byte
	return func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		*ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	}
}
