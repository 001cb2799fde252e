package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"keyhole/credential"
	"keyhole/inject"
	"keyhole/transport"
)

// newTransport returns the one upstream transport: TLS always verified
// against roots, no proxy from the environment (keyhole would loop back
// through itself), resolution and block_private by d, compression left to
// the scrubber, connections pooled generously so that agents' keep-alive
// and short-lived tunnels alike reuse them, and HTTP/2 where the upstream
// offers it by ALPN (HTTP/1.1 otherwise; WebSocket upgrades always go over
// HTTP/1.1).
func newTransport(cfg Config, roots *x509.CertPool, d *dialer) *http.Transport {
	tlsConfig := &tls.Config{
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		DialTLSContext:         dialTLS(d, tlsConfig, cfg.HandshakeTimeout),
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    cfg.HandshakeTimeout,
		ResponseHeaderTimeout:  cfg.UpstreamHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConns:           4096,
		MaxIdleConnsPerHost:    1024,
		MaxResponseHeaderBytes: int64(cfg.MaxHeaderBytes),
		DisableCompression:     true,
		ForceAttemptHTTP2:      true,
		WriteBufferSize:        32 << 10,
		ReadBufferSize:         32 << 10,
	}
}

// newClient returns keyhole's own upstream client (package transport) for
// the agents' requests, configured as newTransport, with fallback taking
// what it does not send itself, and headerTable (0: HTTP/2's default) the
// HPACK encoder table of its HTTP/2 connections. Its TLS handshakes are
// dialTLS's, so its errors classify as the fallback's do; an upstream's
// stray bytes are logged on log as net/http's are.
func newClient(cfg Config, roots *x509.CertPool, d *dialer, fallback *http.Transport, headerTable uint32, log *slog.Logger) *transport.Transport {
	dial := dialTLS(d, &tls.Config{
		RootCAs:    roots,
		MinVersion: tls.VersionTLS12,
		NextProtos: transport.NextProtos(),
	}, cfg.HandshakeTimeout)
	return transport.New(transport.Config{
		DialTLS: func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		},
		ResponseHeaderTimeout:     cfg.UpstreamHeaderTimeout,
		IdleConnTimeout:           90 * time.Second,
		MaxIdleConns:              4096,
		MaxIdleConnsPerHost:       1024,
		MaxResponseHeaderBytes:    int64(cfg.MaxHeaderBytes),
		MaxEncoderHeaderTableSize: headerTable,
		Fallback:                  fallback,
		OnUnsolicited: func(string) {
			// The sentence net/http's "Unsolicited response" becomes (see stdLogClass).
			level, msg := stdLogClass([]byte("Unsolicited response"))
			log.Log(context.Background(), level, msg, "component", "transport")
		},
	})
}

// agentBody is an agent's request body on its way upstream. It marks the
// errors of reading it, so that a request the agent broke off (the
// transport returns that error from its round trip) is not reported as an
// upstream failure.
type agentBody struct{ io.ReadCloser }

func (b agentBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &agentBodyError{err}
	}
	return n, err
}

// agentBodyError is a failure to read the agent's request body.
type agentBodyError struct{ err error }

func (e *agentBodyError) Error() string { return "agent request body: " + e.err.Error() }
func (e *agentBodyError) Unwrap() error { return e.err }

// upstreamRefusal classifies an error from the upstream round trip. A
// broken agent request body, or a request context canceled (net/http
// cancels it when the agent's connection closes; nothing else does), is
// the agent's doing, not the upstream's.
func upstreamRefusal(err error, host string) *inject.Refusal {
	var ae *agentBodyError
	if errors.As(err, &ae) || errors.Is(err, context.Canceled) {
		return inject.Refuse(inject.ClientClosed, "", host,
			"the client abandoned the request to %s before it was complete", host)
	}
	if errors.Is(err, credential.ErrMalformed) {
		// A request body keyhole re-signs as it streams (aws-chunked)
		// that turned out not to parse.
		return inject.Refuse(inject.BadRequest, "", host,
			"the aws-chunked request body is malformed (each chunk must be HEX-SIZE;chunk-signature=<64 hex digits>, CRLF, data, CRLF); nothing more was sent")
	}
	var pe *privateAddressError
	if errors.As(err, &pe) {
		return inject.Refuse(inject.PrivateAddress, "", host,
			"%s resolves to a private, loopback or link-local address; such destinations are blocked", host)
	}
	if isTLSError(err) {
		return inject.Refuse(inject.UpstreamTLS, "", host,
			"the TLS connection to %s failed verification or negotiation; nothing was sent", host)
	}
	if isTimeout(err) {
		return inject.Refuse(inject.UpstreamTimeout, "", host,
			"%s did not answer in time", host)
	}
	return inject.Refuse(inject.UpstreamUnreachable, "", host,
		"could not reach %s", host)
}

func isTLSError(err error) bool {
	var (
		verr  *tls.CertificateVerificationError
		hErr  x509.HostnameError
		uaErr x509.UnknownAuthorityError
		ciErr x509.CertificateInvalidError
		rhErr tls.RecordHeaderError
	)
	if isHandshakeError(err) || errors.As(err, &verr) || errors.As(err, &hErr) || errors.As(err, &uaErr) ||
		errors.As(err, &ciErr) || errors.As(err, &rhErr) {
		return true
	}
	// Alerts from the peer ("remote error: tls: ...") have an unexported
	// type; their text is fixed by crypto/tls.
	return err != nil && strings.Contains(err.Error(), "tls: ")
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// http.Transport's ResponseHeaderTimeout error is not a net.Error.
	return err != nil && err.Error() == "net/http: timeout awaiting response headers"
}
