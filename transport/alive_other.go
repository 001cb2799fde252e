//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package transport

// alive reports true: without a non-blocking peek, a connection the
// upstream closed while idle is found dead when it is used (and an
// idempotent request is sent again on a fresh one).
func (c *conn) alive() bool { return true }

func (c *conn) probe(func(fd uintptr) bool, *bool) bool { return true }

func newPeek(*bool) func(fd uintptr) bool { return nil }
