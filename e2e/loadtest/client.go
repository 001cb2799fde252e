package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sync/atomic"
	"time"
)

// target is what the clients drive: a proxy (baseline or keyhole) or, for
// the SSE reference, the upstream directly.
type target struct {
	name     string
	proxy    *url.URL       // nil: straight to the upstream
	roots    *x509.CertPool // trusted for https://upstream.test
	upstream string         // the upstream's address, dialed when proxy is nil
	proc     *child         // nil for direct

	keepAlive *http.Transport   // shared by the keep-alive scenarios
	closing   *http.Transport   // sends Connection: close, one connection per request
	h2        []*http.Transport // HTTP/2, one connection each (h2.go)
	requests  atomic.Int64      // requests started, for the audit check
}

func newTarget(name string, proxy *url.URL, roots *x509.CertPool, upstreamAddr string, proc *child) *target {
	t := &target{name: name, proxy: proxy, roots: roots, upstream: upstreamAddr, proc: proc}
	t.keepAlive = t.transport(false)
	t.closing = t.transport(true)
	t.h2 = t.h2Transports()
	return t
}

// cpuTicks returns the user and kernel CPU time the target's process has
// used, 0 for direct (no process of its own).
func (t *target) cpuTicks() (user, sys uint64, err error) {
	if t.proc == nil {
		return 0, 0, nil
	}
	return cpuTicks(t.proc.Pid())
}

// ioCalls returns the read and write system calls the target's process
// has made, 0 for direct.
func (t *target) ioCalls() (uint64, error) {
	if t.proc == nil {
		return 0, nil
	}
	return ioCalls(t.proc.Pid())
}

// sched returns what the scheduler did with the target's process's
// threads, zero for direct.
func (t *target) sched() (sched, error) {
	if t.proc == nil {
		return sched{}, nil
	}
	return readSched(t.proc.Pid())
}

// transport returns a client transport to the target. Keep-alive pools
// hold up to 64 idle connections, more than any scenario's concurrency.
// Transports have no TLS session cache, so every new connection makes a
// full handshake.
func (t *target) transport(disableKeepAlives bool) *http.Transport {
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: t.roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:     disableKeepAlives,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   64,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	if t.proxy != nil {
		tr.Proxy = http.ProxyURL(t.proxy)
		return tr
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, t.upstream)
	}
	return tr
}

// connMode is how a client treats its connection to the proxy.
type connMode int

const (
	keepAlive connMode = iota // reuse pooled connections
	connClose                 // send Connection: close, one connection per request
	hangUp                    // fresh transport per request, hang up after the response
	h2Mux                     // HTTP/2, streams multiplexed on one connection per client (h2.go)
)

func (m connMode) String() string {
	switch m {
	case connClose:
		return "Connection: close"
	case hangUp:
		return "hang up"
	case h2Mux:
		return "HTTP/2 multiplexed"
	default:
		return "keep-alive"
	}
}

// newRequest returns a GET for path on upstream.test carrying the
// placeholder.
func newRequest(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+upstreamHost+path, nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header["Authorization"] = []string{benchHeader}
	return req, nil
}

// fetch makes one request for path in mode m and checks it as get does.
func (t *target) fetch(ctx context.Context, m connMode, path string, want int64) (int64, error) {
	t.requests.Add(1)
	switch m {
	case connClose:
		return get(ctx, t.closing, path, want)
	case hangUp:
		tr := t.transport(false)
		defer tr.CloseIdleConnections()
		return get(ctx, tr, path, want)
	case h2Mux:
		return get(ctx, t.h2Client(), path, want)
	default:
		return get(ctx, t.keepAlive, path, want)
	}
}

// get makes one request for path through tr, reads the whole body into
// io.Discard, and checks the status and that the body is want bytes long.
// It returns the body's length.
func get(ctx context.Context, tr http.RoundTripper, path string, want int64) (int64, error) {
	resp, err := roundTrip(ctx, tr, path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("read body: %w", err)
	}
	if n != want {
		return n, fmt.Errorf("read body: got %d bytes, want %d", n, want)
	}
	return n, nil
}

// roundTrip sends one request for path through tr and returns the
// response, whose body the caller closes, when its status is 200.
func roundTrip(ctx context.Context, tr http.RoundTripper, path string) (*http.Response, error) {
	req, err := newRequest(ctx, path)
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}

// refusalReason finds the reason of a keyhole refusal body.
var refusalReason = regexp.MustCompile(`"reason"\s*:\s*"([a-z_]+)"`)

// statusError describes an unexpected status, with keyhole's refusal
// reason when the body has one. Refusal bodies never hold secret values.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if m := refusalReason.FindSubmatch(b); m != nil {
		return fmt.Errorf("status %d, reason %s", resp.StatusCode, m[1])
	}
	return fmt.Errorf("status %d", resp.StatusCode)
}

// errorLog counts a scenario's failed requests and keeps the first.
type errorLog struct {
	n     int
	first error
}

func (e *errorLog) add(err error) {
	if err == nil {
		return
	}
	// A request cut short by the end of the run is not a failure.
	if errors.Is(err, context.Canceled) {
		return
	}
	e.n++
	if e.first == nil {
		e.first = err
	}
}

func (e *errorLog) merge(o errorLog) {
	e.n += o.n
	if e.first == nil {
		e.first = o.first
	}
}
