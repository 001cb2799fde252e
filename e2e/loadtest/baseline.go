package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// Files in the run's temporary directory that the baseline reads.
const (
	upstreamCAFile = "upstream-ca.pem"
	mitmCAFile     = "baseline-ca.pem"
	mitmKeyFile    = "baseline-ca-key.pem"
)

// serveBaseline is the -serve-baseline mode (args are what follows that
// flag): a bare goproxy v1.9.3 MITM
// proxy in its own process, so that its CPU and memory can be read from
// /proc like keyhole's. It intercepts every CONNECT with a leaf from its
// own ECDSA P-256 CA (cached per host), sends inner requests through a
// transport that pins upstream.test:443 to the upstream and verifies it
// with the upstream CA, and neither injects nor scrubs anything. It runs
// until ctx ends.
func serveBaseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest -serve-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory holding the CA files (internal)")
	up := fs.String("upstream", "", "the upstream's 127.0.0.1:port (internal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *up == "" {
		return errors.New("serve baseline: -dir and -upstream are required")
	}
	ca, err := tls.LoadX509KeyPair(filepath.Join(*dir, mitmCAFile), filepath.Join(*dir, mitmKeyFile))
	if err != nil {
		return fmt.Errorf("serve baseline: %w", err)
	}
	roots, err := readPool(filepath.Join(*dir, upstreamCAFile))
	if err != nil {
		return fmt.Errorf("serve baseline: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("serve baseline: %w", err)
	}
	srv := &http.Server{Handler: newBaseline(&ca, roots, *up)}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	slog.New(slog.NewTextHandler(stderr, nil)).Info("baseline is listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve baseline: %w", err)
	}
	return nil
}

// newBaseline returns the bare goproxy MITM proxy.
func newBaseline(ca *tls.Certificate, roots *x509.CertPool, upstreamAddr string) *goproxy.ProxyHttpServer {
	g := goproxy.NewProxyHttpServer()
	g.Verbose = false
	g.ConnectDial = nil
	g.CertStore = &certCache{certs: map[string]*tls.Certificate{}}
	g.Tr = baselineTransport(roots, upstreamAddr)
	g.AllowHTTP2 = true // offers h2 inside tunnels, for the h2_multiplexed scenario
	mitm := &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: goproxy.TLSConfigFromCA(ca)}
	g.OnRequest().HandleConnectFunc(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return mitm, host
	})
	return g
}

// baselineTransport verifies the upstream with roots, as keyhole does, and
// dials only upstream.test:443, at upstreamAddr. Its idle pool is sized like
// keyhole's (1024 per host): with net/http's default of 2, the baseline
// would open a new upstream connection for most requests under 32 clients,
// and the comparison would measure that rather than the proxies. Nothing
// else is tuned: buffers, compression and timeouts are net/http's defaults.
func baselineTransport(roots *x509.CertPool, upstreamAddr string) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second}
	pinned := net.JoinHostPort(upstreamHost, "443")
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != pinned {
				return nil, fmt.Errorf("baseline dial: %s is not %s", addr, pinned)
			}
			return d.DialContext(ctx, network, upstreamAddr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
	}
}

// certCache is the baseline's goproxy.CertStorage: one leaf per host,
// minted once.
type certCache struct {
	mu    sync.Mutex
	certs map[string]*tls.Certificate
}

// Fetch implements goproxy.CertStorage.
func (c *certCache) Fetch(host string, gen func() (*tls.Certificate, error)) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert, ok := c.certs[host]; ok {
		return cert, nil
	}
	cert, err := gen()
	if err != nil {
		return nil, err
	}
	c.certs[host] = cert
	return cert, nil
}

var _ goproxy.CertStorage = (*certCache)(nil)
