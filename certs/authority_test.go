package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadCA returns an Authority over a fresh CA.
func loadCA(t testing.TB, opts Options) *Authority {
	t.Helper()
	dir := t.TempDir()
	a, err := LoadOrCreate(dir, opts)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	return a
}

// handshake runs a TLS handshake over loopback TCP between a server that
// asks a for the leaf of host and a client that trusts only roots and
// expects serverName. (net.Pipe would deadlock: it has no buffer, and a
// client that rejects the certificate writes its alert while the server is
// still writing its flight.)
func handshake(t *testing.T, a *Authority, host string, roots *x509.CertPool, serverName string) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		server := tls.Server(conn, &tls.Config{
			// The proxy knows the host from the CONNECT line; SNI is
			// absent for IP addresses.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.Leaf(host) },
		})
		server.Handshake() // its error mirrors the client's
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	client := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: serverName})
	err = client.Handshake()
	state := client.ConnectionState()
	client.Close()
	<-done
	return state, err
}

func TestLeafHandshake(t *testing.T) {
	const validity = 2 * time.Hour
	a := loadCA(t, Options{LeafValidity: validity})
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())

	tests := []struct {
		name       string
		host       string
		serverName string
		roots      *x509.CertPool
		wantErr    any // nil, or a pointer to the error type wanted
	}{
		{name: "dns name", host: "api.example.test", serverName: "api.example.test", roots: roots},
		{name: "single label", host: "localhost", serverName: "localhost", roots: roots},
		{name: "ipv4", host: "127.0.0.1", serverName: "127.0.0.1", roots: roots},
		{name: "ipv6", host: "::1", serverName: "::1", roots: roots},
		{name: "long name", host: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".test", serverName: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + ".test", roots: roots},
		{name: "other name", host: "a.example.test", serverName: "b.example.test", roots: roots, wantErr: new(x509.HostnameError)},
		{name: "ip for a name", host: "127.0.0.1", serverName: "localhost", roots: roots, wantErr: new(x509.HostnameError)},
		{name: "CA not trusted", host: "api.example.test", serverName: "api.example.test", roots: x509.NewCertPool(), wantErr: new(x509.UnknownAuthorityError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			state, err := handshake(t, a, tc.host, tc.roots, tc.serverName)
			after := time.Now()
			if tc.wantErr != nil {
				if err == nil || !errors.As(err, tc.wantErr) {
					t.Fatalf("handshake error: got %v, want %T", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if got := len(state.VerifiedChains); got != 1 {
				t.Fatalf("verified chains: got %d, want 1", got)
			}
			chain := state.VerifiedChains[0]
			if len(chain) != 2 || !chain[1].Equal(a.Certificate()) {
				t.Fatalf("chain: got %d certificates, want the leaf and the CA", len(chain))
			}
			leaf := chain[0]
			if got := len(state.PeerCertificates); got != 1 {
				t.Errorf("certificates sent: got %d, want 1 (the leaf alone)", got)
			}
			if ip := net.ParseIP(tc.host); ip != nil {
				if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(ip) || len(leaf.DNSNames) != 0 {
					t.Errorf("SANs: got IPs %v and names %v, want IP %v alone", leaf.IPAddresses, leaf.DNSNames, ip)
				}
			} else if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tc.host || len(leaf.IPAddresses) != 0 {
				t.Errorf("SANs: got names %v and IPs %v, want name %v alone", leaf.DNSNames, leaf.IPAddresses, tc.host)
			}
			checkLeafBounds(t, leaf, before, after, validity)
			if got, want := leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("ExtKeyUsage: got %v, want %v", got, want)
			}
			if got, want := leaf.KeyUsage, x509.KeyUsageDigitalSignature; got != want {
				t.Errorf("KeyUsage: got %v, want %v", got, want)
			}
			if leaf.IsCA {
				t.Errorf("IsCA: got %v, want %v", leaf.IsCA, false)
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("leaf key: got %T, want a P-256 ECDSA key", leaf.PublicKey)
			}
		})
	}
}

// checkLeafBounds checks that leaf, minted between before and after, is
// valid from an hour before to validity after. Certificates keep whole
// seconds.
func checkLeafBounds(t *testing.T, leaf *x509.Certificate, before, after time.Time, validity time.Duration) {
	t.Helper()
	if lo, hi := before.Add(-time.Hour).Truncate(time.Second), after.Add(-time.Hour); leaf.NotBefore.Before(lo) || leaf.NotBefore.After(hi) {
		t.Errorf("NotBefore: got %v, want between %v and %v", leaf.NotBefore, lo, hi)
	}
	if lo, hi := before.Add(validity).Truncate(time.Second), after.Add(validity); leaf.NotAfter.Before(lo) || leaf.NotAfter.After(hi) {
		t.Errorf("NotAfter: got %v, want between %v and %v", leaf.NotAfter, lo, hi)
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	dir := t.TempDir()
	caCert := writeCA(t, dir, func(c *x509.Certificate) { c.NotAfter = time.Now().Add(3 * time.Hour) })
	a, err := Load(dir, Options{LeafValidity: 24 * time.Hour})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	leaf, err := a.Leaf("api.example.test")
	if err != nil {
		t.Fatalf("Leaf: %v", err)
	}
	if got, want := leaf.Leaf.NotAfter, caCert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter: got %v, want %v (the CA's)", got, want)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "api.example.test"}); err != nil {
		t.Errorf("Verify: %v", err)
	}

	_, err = a.mint("api.example.test", caCert.NotAfter.Add(time.Second))
	if err == nil || !strings.Contains(err.Error(), "the CA expired on") {
		t.Errorf("mint after the CA expired: got %v, want an error saying the CA expired", err)
	}
}

func TestLeafRejectsBadHosts(t *testing.T) {
	a := loadCA(t, Options{})
	tests := []struct {
		host string
		want string
	}{
		{"", "empty host"},
		{"example.com:443", "has a port"},
		{"127.0.0.1:443", "has a port"},
		{"[::1]", "without brackets"},
		{"[::1]:443", "without brackets"},
		{"*.example.com", "wildcard"},
		{"a.*.example.com", "wildcard"},
		{"a..example.com", "empty label"},
		{".example.com", "empty label"},
		{"example.com.", "empty label"},
		{"fe80::1%eth0", "zone"},
		{"exa mple.com", "not allowed"},
		{"example.com/path", "not allowed"},
		{"ex\x00ample.com", "not allowed"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{strings.Repeat("a.", 127) + "aa", "longer than 253"},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.host), func(t *testing.T) {
			cert, err := a.Leaf(tc.host)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Leaf: got %v, want an error containing %q", err, tc.want)
			}
			if cert != nil {
				t.Errorf("certificate: got %v, want nil", cert)
			}
			if !strings.HasPrefix(err.Error(), "certs: ") {
				t.Errorf("error: got %q, want the prefix %q", err, "certs: ")
			}
		})
	}
	if hits, misses := a.CacheStats(); hits+misses != 0 {
		t.Errorf("CacheStats: got %d hits and %d misses, want none", hits, misses)
	}
}

func TestLeafAcceptsHosts(t *testing.T) {
	a := loadCA(t, Options{})
	for _, host := range []string{"example.com", "a-b.example", "_dmarc.example.com", "xn--bcher-kva.example", "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1", strings.Repeat("a.", 126) + "a"} {
		t.Run(host, func(t *testing.T) {
			if _, err := a.Leaf(host); err != nil {
				t.Errorf("Leaf: got %v, want nil error", err)
			}
		})
	}
}

func TestLeafConcurrentMintsOnce(t *testing.T) {
	const n = 64
	a := loadCA(t, Options{})
	var (
		start sync.WaitGroup
		done  sync.WaitGroup
		certs [n]*tls.Certificate
		errs  [n]error
	)
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			certs[i], errs[i] = a.Leaf("same.example.test")
		})
	}
	start.Done()
	done.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Leaf %d: %v", i, errs[i])
		}
		if certs[i] != certs[0] {
			t.Errorf("Leaf %d: got a different certificate from Leaf 0, want the one minted", i)
		}
	}
	if hits, misses := a.CacheStats(); hits != n-1 || misses != 1 {
		t.Errorf("CacheStats: got %d hits and %d misses, want %d and %d", hits, misses, n-1, 1)
	}
}

func TestLeafCache(t *testing.T) {
	type call struct {
		host     string
		sleep    time.Duration // before the call
		wantSame int           // index of an earlier call whose certificate must be returned, or -1 for a fresh one
	}
	tests := []struct {
		name       string
		opts       Options
		calls      []call
		wantHits   uint64
		wantMisses uint64
	}{
		{
			name:  "hit",
			calls: []call{{"a.test", 0, -1}, {"a.test", 0, 0}, {"b.test", 0, -1}, {"a.test", 0, 0}},
			// a, b minted; a served twice from the cache
			wantHits: 2, wantMisses: 2,
		},
		{
			name:     "TTL expiry re-mints",
			opts:     Options{CacheTTL: minCacheTTL},
			calls:    []call{{"a.test", 0, -1}, {"a.test", 0, 0}, {"a.test", minCacheTTL + 50*time.Millisecond, -1}},
			wantHits: 1, wantMisses: 2,
		},
		{
			name:     "size bound evicts least recently used",
			opts:     Options{CacheSize: 2},
			calls:    []call{{"a.test", 0, -1}, {"b.test", 0, -1}, {"a.test", 0, 0}, {"c.test", 0, -1}, {"a.test", 0, 0}, {"b.test", 0, -1}},
			wantHits: 2, wantMisses: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := loadCA(t, tc.opts)
			var got []*tls.Certificate
			for i, c := range tc.calls {
				time.Sleep(c.sleep)
				cert, err := a.Leaf(c.host)
				if err != nil {
					t.Fatalf("call %d: Leaf(%q): %v", i, c.host, err)
				}
				if c.wantSame >= 0 && cert != got[c.wantSame] {
					t.Errorf("call %d: Leaf(%q): got a new certificate, want the one from call %d", i, c.host, c.wantSame)
				}
				for j, prev := range got {
					if c.wantSame < 0 && cert.Leaf.SerialNumber.Cmp(prev.Leaf.SerialNumber) == 0 {
						t.Errorf("call %d: Leaf(%q): got the serial of call %d, want a fresh certificate", i, c.host, j)
					}
				}
				got = append(got, cert)
			}
			if hits, misses := a.CacheStats(); hits != tc.wantHits || misses != tc.wantMisses {
				t.Errorf("CacheStats: got %d hits and %d misses, want %d and %d", hits, misses, tc.wantHits, tc.wantMisses)
			}
		})
	}
}

func TestLeafExpiredInCacheReMints(t *testing.T) {
	a := loadCA(t, Options{})
	stale := &tls.Certificate{Leaf: &x509.Certificate{NotAfter: time.Now().Add(-time.Second)}}
	a.cache.Add("a.test", stale)
	cert, err := a.Leaf("a.test")
	if err != nil {
		t.Fatalf("Leaf: %v", err)
	}
	if cert == stale {
		t.Errorf("Leaf: got the expired certificate, want a fresh one")
	}
	if hits, misses := a.CacheStats(); hits != 0 || misses != 1 {
		t.Errorf("CacheStats: got %d hits and %d misses, want 0 and 1", hits, misses)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		want    Options
		wantErr string
	}{
		{name: "zero", want: Options{CacheSize: 1024, CacheTTL: time.Hour, LeafValidity: 24 * time.Hour}},
		{name: "short validity halves the TTL", in: Options{LeafValidity: time.Hour}, want: Options{CacheSize: 1024, CacheTTL: 30 * time.Minute, LeafValidity: time.Hour}},
		{name: "explicit", in: Options{CacheSize: 5, CacheTTL: time.Minute, LeafValidity: time.Hour}, want: Options{CacheSize: 5, CacheTTL: time.Minute, LeafValidity: time.Hour}},
		{name: "negative size", in: Options{CacheSize: -1}, wantErr: "CacheSize -1 is negative"},
		{name: "negative TTL", in: Options{CacheTTL: -time.Second}, wantErr: "CacheTTL -1s is negative"},
		{name: "negative validity", in: Options{LeafValidity: -time.Second}, wantErr: "LeafValidity -1s is negative"},
		{name: "TTL too short", in: Options{CacheTTL: time.Millisecond}, wantErr: "CacheTTL 1ms is below the minimum of 100ms"},
		{name: "TTL too long", in: Options{CacheTTL: 13 * time.Hour}, wantErr: "CacheTTL 13h0m0s exceeds half of LeafValidity 24h0m0s"},
		{name: "validity too short for any TTL", in: Options{LeafValidity: 100 * time.Millisecond}, wantErr: "below the minimum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "certs: options: ") {
					t.Errorf("error: got %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v, want %+v, nil", got, err, tc.want)
			}
		})
	}
}

func BenchmarkLeafHit(b *testing.B) {
	a := loadCA(b, Options{})
	if _, err := a.Leaf("bench.example.test"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Leaf("bench.example.test"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLeafMiss(b *testing.B) {
	a := loadCA(b, Options{})
	hosts := make([]string, 4096) // more than the cache holds, so each call mints
	for i := range hosts {
		hosts[i] = "h" + strconv.Itoa(i) + ".example.test"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := a.Leaf(hosts[i%len(hosts)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
