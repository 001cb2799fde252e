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
	var buf [1]byte
	ok := false
	err := c.raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
