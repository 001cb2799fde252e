// Package upstreamtest holds upstream stand-ins shared by the tests of
// several packages.
package upstreamtest

import (
	"net"
	"sync/atomic"
	"testing"
)

// Counting starts a TCP listener on loopback that counts the connections
// made to it and closes each: point a resolve pin at it, and a test can
// show that nothing was dialed. It stops when the test ends.
func Counting(t testing.TB) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}
