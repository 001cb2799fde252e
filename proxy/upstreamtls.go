package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// handshakeError is a failure of the upstream TLS handshake after the TCP
// connection was made: the upstream closed or reset the connection, sent
// something that is not TLS, or refused the handshake. It is upstream_tls,
// never upstream_unreachable (which means the connection itself failed).
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "upstream TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// dialTLS returns the transport's DialTLSContext: it dials through d and
// completes the handshake itself, verified against cfg (the transport
// ignores its TLSClientConfig and TLSHandshakeTimeout when DialTLSContext
// is set), so that a handshake failure is told apart from a failure to
// connect. A handshake that times out, or whose request was abandoned,
// keeps its own error (upstream_timeout, client_closed).
func dialTLS(d *dialer, cfg *tls.Config, timeout time.Duration) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			raw.Close()
			return nil, err
		}
		c := cfg.Clone()
		c.ServerName = host
		tc := tls.Client(raw, c)
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if hctx.Err() != nil || isTimeout(err) {
				return nil, errHandshakeTimeout
			}
			return nil, &handshakeError{err}
		}
		return tc, nil
	}
}

// errHandshakeTimeout is an upstream TLS handshake that did not end within
// the handshake timeout.
var errHandshakeTimeout = &timeoutError{"upstream TLS handshake timeout"}

// timeoutError is a net.Error that reports a timeout.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

var _ net.Error = (*timeoutError)(nil)

// isHandshakeError reports whether err is a failed upstream handshake.
func isHandshakeError(err error) bool {
	var he *handshakeError
	return errors.As(err, &he)
}
