package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"keyhole/inject"
	"keyhole/rules"
)

// TestUpstreamRefusalClasses checks the reason each upstream failure gets:
// a handshake the upstream broke off is upstream_tls, a connection that
// never opened upstream_unreachable, a handshake that took too long
// upstream_timeout.
func TestUpstreamRefusalClasses(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want inject.Reason
	}{
		{"closed during the handshake", &handshakeError{io.EOF}, inject.UpstreamTLS},
		{"reset during the handshake", &handshakeError{&net.OpError{Op: "read", Err: syscall.ECONNRESET}}, inject.UpstreamTLS},
		{"wrapped", fmt.Errorf("get: %w", &handshakeError{io.ErrUnexpectedEOF}), inject.UpstreamTLS},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, inject.UpstreamUnreachable},
		{"handshake timeout", errHandshakeTimeout, inject.UpstreamTimeout},
		{"agent left", context.Canceled, inject.ClientClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := upstreamRefusal(tc.err, "h.test").Reason; got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestDialTLSHangup dials an upstream that closes the connection during
// the handshake: the error is a handshakeError.
func TestDialTLSHangup(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 64))
			c.Close()
		}
	}()
	set, err := rules.Parse(filepath.Join(t.TempDir(), "keyhole.yaml"), []byte("egress:\n  default: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	set.Egress.AllowPrivate = true // the upstream is on loopback
	pol := &policy{set: set}
	d := newDialer(func() *policy { return pol }, 5*time.Second)
	_, err = dialTLS(d, &tls.Config{}, 5*time.Second)(context.Background(), "tcp", ln.Addr().String())
	if !isHandshakeError(err) {
		t.Fatalf("got %v, want a handshake error", err)
	}
}
