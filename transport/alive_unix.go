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
func (c *conn) alive() bool {
	if c.raw == nil {
		return true
	}
	c.peekOK = false
	return c.raw.Read(c.peek) == nil && c.peekOK
}

// newPeek returns c's peek for alive (made once: a closure made at each
// check would be allocated at each check).
func (c *conn) newPeek() func(fd uintptr) bool {
	var buf [1]byte
	return func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		c.peekOK = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	}
}
