package e2e

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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadUpstream echoes the Authorization header it received, in a response
// header and in the body, and counts the requests that carried the real
// secret.
type loadUpstream struct {
	real, other atomic.Int64
}

func (u *loadUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := r.Header.Get("Authorization")
	if a == "Bearer "+stripeValue {
		u.real.Add(1)
	} else {
		u.other.Add(1)
	}
	w.Header().Set("X-Echo-Authorization", a)
	_, _ = io.WriteString(w, "auth="+a)
}

// loadWorld is a keyhole under load: quiet operational log, audit log in
// a file, admin endpoints on.
type loadWorld struct {
	k     *keyhole
	up    *upstream
	echo  *loadUpstream
	audit string
	pool  *x509.CertPool
}

func newLoadWorld(t *testing.T, hosts int) *loadWorld {
	t.Helper()
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	raiseFileLimit(t)
	names := make([]string, hosts)
	var pins strings.Builder
	w := &loadWorld{echo: &loadUpstream{}, audit: filepath.Join(t.TempDir(), "audit.jsonl")}
	for i := range names {
		names[i] = fmt.Sprintf("api%d.load.test", i)
	}
	w.up = newUpstream(t, names, w.echo)
	for _, n := range names {
		fmt.Fprintf(&pins, "  %s: %s\n", n, w.up.Addr())
	}
	w.k = startKeyhole(t, `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: ["*.load.test"]
resolve:
`+pins.String(), "KEYHOLE_LOG_LEVEL=info", "KEYHOLE_ADMIN_LISTEN=127.0.0.1:0", "KEYHOLE_AUDIT_LOG="+w.audit)
	pemBytes, err := os.ReadFile(w.k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	w.pool = x509.NewCertPool()
	w.pool.AppendCertsFromPEM(pemBytes)
	t.Cleanup(func() {
		b, _ := os.ReadFile(w.audit)
		assertNoSecretIn(t, "the audit log", string(b))
	})
	return w
}

// raiseFileLimit lets the test process hold thousands of connections (its
// clients and the upstream's server side).
func raiseFileLimit(t *testing.T) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < 4096 {
		t.Skipf("RLIMIT_NOFILE is %d, the load test needs 4096", lim.Cur)
	}
}

// transport returns a client transport through keyhole; dials counts the
// connections it opens to keyhole, and hangups, when not nil, the reads on
// them that failed other than because the client closed the connection:
// keyhole ended it (EOF or a reset).
func (w *loadWorld) transport(keepAlive bool, dials, hangups *atomic.Int64) *http.Transport {
	proxyURL, _ := url.Parse(w.k.ProxyURL("", ""))
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: w.pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			c, err := d.DialContext(ctx, network, addr)
			if err != nil || hangups == nil {
				return c, err
			}
			return hangupConn{c, hangups}, nil
		},
		DisableKeepAlives:     !keepAlive,
		MaxIdleConnsPerHost:   1,
		ResponseHeaderTimeout: 20 * time.Second,
	}
}

// hangupConn counts the reads that fail other than because this side
// closed the connection.
type hangupConn struct {
	net.Conn
	hangups *atomic.Int64
}

func (c hangupConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.hangups.Add(1)
	}
	return n, err
}

// check sends one request with the placeholder to host and checks that the
// echo shows the placeholder, never the value. It returns a description
// of what was wrong, or "".
func check(c *http.Client, host string) string {
	req, _ := http.NewRequest("GET", "https://"+host+"/v1/load", nil)
	req.Header.Set("Authorization", "Bearer <<STRIPE>>")
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return "reading the body: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("status %d %s", resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"))
	case strings.Contains(string(body), stripeValue) || strings.Contains(resp.Header.Get("X-Echo-Authorization"), stripeValue):
		return "the response holds secret STRIPE"
	case string(body) != "auth=Bearer <<STRIPE>>" || resp.Header.Get("X-Echo-Authorization") != "Bearer <<STRIPE>>":
		return "the echo does not show the placeholder"
	}
	return ""
}

// quiesce closes the upstream's connections, as an upstream does with idle
// keep-alives, so that keyhole's pool holds no descriptor, and returns
// keyhole's figures once its descriptors are at most want (want < 0: once
// they stop changing).
func (w *loadWorld) quiesce(t *testing.T, want int) procStats {
	t.Helper()
	w.up.CloseClientConnections()
	return w.k.settle(t, want)
}

// auditRecords counts the request records in the audit log.
func (w *loadWorld) auditRecords(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(w.audit)
		if err != nil {
			t.Fatal(err)
		}
		n := strings.Count(string(b), `"request_id"`)
		if n >= int(w.echo.real.Load()) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLoadConcurrentKeepAliveTunnels(t *testing.T) {
	const tunnels, duration = 1000, 5 * time.Second
	w := newLoadWorld(t, 1)
	var dials, hangups atomic.Int64
	warm := &http.Client{Transport: w.transport(true, &dials, &hangups)}
	if problem := check(warm, "api0.load.test"); problem != "" {
		t.Fatalf("warm-up: %s", problem)
	}
	warm.CloseIdleConnections()
	base := w.quiesce(t, -1)
	t.Logf("before: %v", base)

	// started counts the clients that have had an answer, so hold their
	// tunnel open; the clients go on until the open tunnels are counted
	// (however slowly a loaded machine opens the last one) and the
	// duration is over.
	var ok, failed, started atomic.Int64
	var firstFailure sync.Once
	var wg sync.WaitGroup
	stop := time.Now().Add(duration)
	counted := make(chan struct{})
	running := func() bool {
		select {
		case <-counted:
			return time.Now().Before(stop)
		default:
			return true
		}
	}
	clients := make([]*http.Client, tunnels)
	for i := range clients {
		clients[i] = &http.Client{Transport: w.transport(true, &dials, &hangups), Timeout: 30 * time.Second}
		wg.Add(1)
		go func(c *http.Client) {
			defer wg.Done()
			for first := true; running(); {
				if problem := check(c, "api0.load.test"); problem != "" {
					failed.Add(1)
					firstFailure.Do(func() { t.Errorf("first failed request: %s", problem) })
					continue
				}
				ok.Add(1)
				if first {
					first = false
					started.Add(1)
				}
			}
		}(clients[i])
	}
	time.Sleep(duration - time.Second)
	startedAtMark := started.Load()
	for deadline := time.Now().Add(60 * time.Second); started.Load() < tunnels && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	peak := w.k.stats(t)
	openTunnels := w.k.metric(t, "keyhole_open_tunnels")
	allStarted := started.Load()
	close(counted)
	wg.Wait()
	elapsed := duration + time.Since(stop)
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	t.Logf("%d tunnels: %d requests in %v (%.0f/s), %d failed; %d clients answered after %v; during: %v, %v open tunnels",
		tunnels, ok.Load(), elapsed.Round(time.Millisecond), float64(ok.Load())/elapsed.Seconds(), failed.Load(), startedAtMark, duration-time.Second, peak, openTunnels)

	if failed.Load() > 0 {
		t.Errorf("failed requests: got %d, want 0", failed.Load())
	}
	if allStarted < tunnels {
		t.Errorf("clients answered within a minute: got %d, want %d", allStarted, tunnels)
	}
	if openTunnels < float64(allStarted) {
		t.Errorf("open tunnels during the load, once %d clients had an answer: got %v, want at least %d", allStarted, openTunnels, allStarted)
	}
	// keyhole keeps tunnels alive: it ends none of them, and each client
	// has opened one (net/http may dial a spare when a request starts
	// before the previous response's connection is back in its pool, so
	// a few more connections are the client's, not keyhole's).
	if h := hangups.Load(); h != 0 {
		t.Errorf("tunnels keyhole ended during the load: got %d, want 0", h)
	}
	if d := dials.Load(); d < tunnels+1 || d > tunnels+1+tunnels/100 {
		t.Errorf("connections to keyhole: got %d, want %d (one per client) and at most 1%% more", d, tunnels+1)
	}
	if got, want := w.echo.real.Load(), ok.Load()+1; got != want || w.echo.other.Load() != 0 {
		t.Errorf("upstream requests with the real secret: got %d (and %d without), want %d", got, w.echo.other.Load(), want)
	}
	if got, want := w.auditRecords(t), int(ok.Load())+1; got != want {
		t.Errorf("audit records: got %d, want %d, one per request", got, want)
	}
	w.k.assertNothingOpen(t)
	after := w.quiesce(t, base.FDs+3)
	t.Logf("after: %v", after)
	if after.FDs > base.FDs+3 {
		t.Errorf("keyhole's file descriptors after the load: got %d, want at most %d (baseline %d + 3)", after.FDs, base.FDs+3, base.FDs)
	}
	if after.Threads > base.Threads+8 {
		t.Errorf("keyhole's threads after the load: got %d, want at most %d (baseline %d + 8)", after.Threads, base.Threads+8, base.Threads)
	}
}

func TestLoadShortLivedTunnels(t *testing.T) {
	const tunnels, first, workers, hosts = 10000, 1000, 4, 4
	w := newLoadWorld(t, hosts)
	var dials atomic.Int64
	c := &http.Client{Transport: w.transport(false, &dials, nil), Timeout: 30 * time.Second}
	base := w.quiesce(t, -1)
	t.Logf("before: %v", base)

	var next, failed atomic.Int64
	var firstFailure sync.Once
	run := func(upTo int64) {
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > upTo {
						return
					}
					if problem := check(c, fmt.Sprintf("api%d.load.test", i%hosts)); problem != "" {
						failed.Add(1)
						firstFailure.Do(func() { t.Errorf("first failed request: %s", problem) })
					}
				}
			}()
		}
		wg.Wait()
		next.Store(upTo)
	}
	start := time.Now()
	run(first)
	early := w.quiesce(t, base.FDs+3)
	run(tunnels)
	elapsed := time.Since(start)
	late := w.quiesce(t, base.FDs+3)
	t.Logf("%d short-lived tunnels, %d at a time, in %v (%.0f/s), %d failed; after %d: %v; after %d: %v",
		tunnels, workers, elapsed.Round(time.Millisecond), tunnels/elapsed.Seconds(), failed.Load(), first, early, tunnels, late)

	if failed.Load() > 0 {
		t.Errorf("failed requests: got %d, want 0", failed.Load())
	}
	if d := dials.Load(); d != tunnels {
		t.Errorf("tunnels opened: got %d, want %d", d, tunnels)
	}
	if misses := w.k.metric(t, "keyhole_leaf_cache_misses_total"); misses != hosts {
		t.Errorf("leaf certificates minted: got %v, want %d, one per host", misses, hosts)
	}
	if hits := w.k.metric(t, "keyhole_leaf_cache_hits_total"); hits < tunnels-hosts {
		t.Errorf("leaf cache hits: got %v, want at least %d", hits, tunnels-hosts)
	}
	if got := w.auditRecords(t); got != tunnels {
		t.Errorf("audit records: got %d, want %d, one per request", got, tunnels)
	}
	const margin = 16 << 20
	if late.RSS > early.RSS+margin {
		t.Errorf("keyhole's RSS after %d tunnels: got %d MiB, want at most %d MiB (after %d: %d MiB, + 16 MiB)",
			tunnels, late.RSS>>20, (early.RSS+margin)>>20, first, early.RSS>>20)
	}
	w.k.assertNothingOpen(t)
	if late.FDs > base.FDs+3 {
		t.Errorf("keyhole's file descriptors after the load: got %d, want at most %d (baseline %d + 3)", late.FDs, base.FDs+3, base.FDs)
	}
}
