package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Defaults and bounds of [Options].
const (
	defaultCacheSize    = 1024
	defaultCacheTTL     = time.Hour
	defaultLeafValidity = 24 * time.Hour

	// minCacheTTL keeps the cache's sweeper sane: expirable.LRU scans for
	// expired entries every TTL/100 and panics on a zero interval.
	minCacheTTL = 100 * time.Millisecond
)

// Options tunes how an [Authority] mints and caches leaves. The zero value
// gives the defaults noted on each field.
type Options struct {
	// CacheSize is how many leaves are cached; the least recently used is
	// dropped first. Zero means 1024. Negative is an error.
	CacheSize int

	// CacheTTL is how long a leaf stays cached after it is minted. Zero
	// means one hour, or half of LeafValidity if that is shorter. It must be
	// at least 100ms and at most half of LeafValidity, so that a cached leaf
	// always has most of its validity left.
	CacheTTL time.Duration

	// LeafValidity is how long a leaf is valid after it is minted, counting
	// from now (NotBefore is an hour earlier, for clients whose clocks lag).
	// A leaf never outlives the CA: its NotAfter is capped at the CA's. Zero
	// means 24 hours. Negative is an error.
	LeafValidity time.Duration
}

// withDefaults fills in the defaults of o and checks its bounds.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.CacheSize < 0:
		return o, fmt.Errorf("certs: options: CacheSize %d is negative", o.CacheSize)
	case o.CacheTTL < 0:
		return o, fmt.Errorf("certs: options: CacheTTL %v is negative", o.CacheTTL)
	case o.LeafValidity < 0:
		return o, fmt.Errorf("certs: options: LeafValidity %v is negative", o.LeafValidity)
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = defaultLeafValidity
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = min(defaultCacheTTL, o.LeafValidity/2)
	}
	switch {
	case o.CacheTTL < minCacheTTL:
		return o, fmt.Errorf("certs: options: CacheTTL %v is below the minimum of %v", o.CacheTTL, minCacheTTL)
	case o.CacheTTL > o.LeafValidity/2:
		return o, fmt.Errorf("certs: options: CacheTTL %v exceeds half of LeafValidity %v", o.CacheTTL, o.LeafValidity)
	}
	return o, nil
}

// Authority is a loaded CA that mints and caches leaf certificates. Get one
// from [Load] or [LoadOrCreate]. It is safe for concurrent use.
//
// The cache keeps one background goroutine, which sweeps expired leaves, for
// as long as the process runs (expirable.LRU offers no way to stop it), so
// make one Authority per process rather than one per connection.
type Authority struct {
	ca       *ca
	validity time.Duration
	cache    *expirable.LRU[string, *tls.Certificate]

	mu       sync.Mutex
	inflight map[string]*flight // hosts being minted now

	hits, misses atomic.Uint64
}

// flight is one mint in progress, shared by every caller asking for the same
// host meanwhile.
type flight struct {
	done chan struct{} // closed when cert and err are set
	cert *tls.Certificate
	err  error
}

// newAuthority wraps a loaded CA; opts must have its defaults filled in.
func newAuthority(c *ca, opts Options) *Authority {
	return &Authority{
		ca:       c,
		validity: opts.LeafValidity,
		cache:    expirable.NewLRU[string, *tls.Certificate](opts.CacheSize, nil, opts.CacheTTL),
		inflight: make(map[string]*flight),
	}
}

// CertPEM returns the CA certificate, PEM-encoded, as agents must trust it.
// It never contains the key. The caller may modify the returned slice.
func (a *Authority) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.ca.cert.Raw})
}

// Certificate returns the parsed CA certificate. It is shared: the caller
// must not modify it.
func (a *Authority) Certificate() *x509.Certificate { return a.ca.cert }

// Leaf returns a certificate for host, signed by the CA, for use as a TLS
// server certificate: its chain is the leaf alone (clients trust the CA),
// Leaf is set, and its key is a fresh ECDSA P-256 key.
//
// host is a DNS name or an IP address literal, already canonical: the caller
// lower-cases it and strips any trailing dot and port. Leaf rejects an empty
// host, a host with a port or brackets, a wildcard, and other text that
// cannot be a host name. A DNS name becomes the certificate's DNS SAN, an IP
// address its IP SAN.
//
// Leaves are cached (see [Options]); callers asking for the same uncached
// host at once share one mint. The returned certificate is shared and must
// not be modified.
func (a *Authority) Leaf(host string) (*tls.Certificate, error) {
	// Only checked hosts are ever cached, so a hit skips the check.
	if cert, ok := a.cached(host); ok {
		a.hits.Add(1)
		return cert, nil
	}
	if err := checkHost(host); err != nil {
		return nil, err
	}
	a.mu.Lock()
	// Look again under the lock: a mint that finished since the first look
	// has stored its leaf before leaving inflight.
	if cert, ok := a.cached(host); ok {
		a.mu.Unlock()
		a.hits.Add(1)
		return cert, nil
	}
	if f, ok := a.inflight[host]; ok {
		a.mu.Unlock()
		<-f.done
		a.hits.Add(1)
		return f.cert, f.err
	}
	f := &flight{done: make(chan struct{})}
	a.inflight[host] = f
	a.mu.Unlock()

	a.misses.Add(1)
	a.fly(host, f)
	return f.cert, f.err
}

// fly mints the leaf for host into f, caches it, and releases the callers
// waiting on f, even if minting panics.
func (a *Authority) fly(host string, f *flight) {
	defer func() {
		if f.cert == nil && f.err == nil { // mint panicked
			f.err = fmt.Errorf("certs: leaf for %q: minting failed", host)
		}
		a.mu.Lock()
		delete(a.inflight, host)
		a.mu.Unlock()
		close(f.done)
	}()
	f.cert, f.err = a.mint(host, time.Now())
	if f.err == nil {
		a.cache.Add(host, f.cert)
	}
}

// cached returns the cached leaf for host if it is still valid. A cache
// entry can outlive its leaf only when the leaf was capped at the CA's
// NotAfter.
func (a *Authority) cached(host string) (*tls.Certificate, bool) {
	cert, ok := a.cache.Get(host)
	if !ok || !time.Now().Before(cert.Leaf.NotAfter) {
		return nil, false
	}
	return cert, true
}

// CacheStats reports how many [Authority.Leaf] calls were answered without
// minting (hits: from the cache, or by sharing another caller's mint) and how
// many minted a leaf (misses), since the Authority was made.
func (a *Authority) CacheStats() (hits, misses uint64) {
	return a.hits.Load(), a.misses.Load()
}
