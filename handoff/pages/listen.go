package pages

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keyhole/certs"
)

// Bounds of the handoff listener.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 5 * time.Second
)

// ListenConfig says where the handoff listener listens and which
// certificate it presents.
type ListenConfig struct {
	// Addr is the address to listen on (handoff.listen), host:port.
	Addr string
	// BaseURL is handoff.base_url: https, and its host is the name the
	// leaf certificate is for.
	BaseURL string
	// CertFile and KeyFile are the operator's certificate chain and key
	// (PEM), read once by Listen. Both empty: the listener presents a
	// leaf of CA for BaseURL's host instead (renewed as it nears expiry).
	CertFile, KeyFile string
	// CA signs the leaf when CertFile is empty; nil is then an error.
	CA *certs.Authority
}

// Listen binds cfg.Addr and returns a TLS listener presenting cfg's
// certificate (TLS 1.2 or later, h2 and http/1.1). Every problem with the
// base URL or the certificate is an error here, not at the first visit.
func Listen(cfg ListenConfig) (net.Listener, error) {
	conf, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("handoff listener: %w", err)
	}
	return tls.NewListener(ln, conf), nil
}

// tlsConfig is the TLS configuration of cfg.
func tlsConfig(cfg ListenConfig) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, errors.New("handoff listener: cert_file and key_file go together")
		}
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("handoff listener: cert_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
		return conf, nil
	}
	host, err := baseHost(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.CA == nil {
		return nil, errors.New("handoff listener: no CA to sign a leaf for " + host)
	}
	if _, err := cfg.CA.Leaf(host); err != nil {
		return nil, fmt.Errorf("handoff listener: leaf for %s: %w", host, err)
	}
	ca := cfg.CA
	conf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return ca.Leaf(host) // cached, and minted again before it expires
	}
	return conf, nil
}

// baseHost is the canonical host of an https base URL: lower case, no
// trailing dot, no port, no brackets.
func baseHost(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "", errors.New("handoff listener: base_url must be an https URL with a host")
	}
	return strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), nil
}

// Serve answers h on ln until ctx ends, then shuts down, waiting a few
// seconds for requests in flight. Requests have timeouts and bounded
// headers; connection errors (a scanner's failed handshake) go to log at
// debug level. It returns nil after ctx ends, or the error that stopped
// the listener.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("handoff listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-done
	if err != nil {
		return fmt.Errorf("handoff listener: shutdown: %w", err)
	}
	return nil
}
