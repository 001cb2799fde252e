package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// setup is what both proxies need to start, made once per run.
type setup struct {
	dir      string // temporary; holds the CA files, rules and state
	bin      string // keyhole binary
	binB     string // a second keyhole binary, measured as keyhole-b; empty: none
	auditLog string
	env      []string // extra environment for keyhole (-keyhole-env)
	up       *upstream
	upCA     *authority // signs the upstream's certificate
	mitmCA   *authority // the baseline's MITM CA
	squidCA  *authority // Squid's ssl-bump CA
	noSquid  error      // why Squid cannot run here (errNoSquid); the run goes on without it
}

// newSetup generates the CAs, writes the files the children read and
// starts the upstream.
func newSetup(dir, bin, auditLog string) (*setup, error) {
	s := &setup{dir: dir, bin: bin, auditLog: auditLog}
	var err error
	if s.upCA, err = newAuthority("keyhole loadtest upstream CA"); err != nil {
		return nil, err
	}
	if s.mitmCA, err = newAuthority("keyhole loadtest baseline MITM CA"); err != nil {
		return nil, err
	}
	if s.squidCA, err = newAuthority("keyhole loadtest Squid ssl-bump CA"); err != nil {
		return nil, err
	}
	if err := s.upCA.writeCert(filepath.Join(dir, upstreamCAFile)); err != nil {
		return nil, err
	}
	if err := s.mitmCA.writeCert(filepath.Join(dir, mitmCAFile)); err != nil {
		return nil, err
	}
	if err := s.mitmCA.writeKey(filepath.Join(dir, mitmKeyFile)); err != nil {
		return nil, err
	}
	leaf, err := s.upCA.leaf(upstreamHost)
	if err != nil {
		return nil, err
	}
	if s.up, err = startUpstream(leaf); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs a fresh baseline and a fresh keyhole, with binB a fresh
// keyhole-b (nil without), and with withSquid a fresh Squid when it is
// installed (nil when not). On error, whatever started is stopped.
func (s *setup) start(ctx context.Context, withSquid bool) (base, sq, kh, kb *target, err error) {
	bc, err := startBaseline(ctx, s.dir, s.up.addr)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	kc, roots, err := startKeyhole(ctx, "keyhole", s.bin, s.dir, s.up.addr, s.auditLog, s.env)
	if err != nil {
		_ = bc.Stop()
		return nil, nil, nil, nil, err
	}
	base = newTarget("baseline", &url.URL{Scheme: "http", Host: bc.Addr}, s.mitmCA.pool(), s.up.addr, bc)
	kh = newTarget("keyhole", &url.URL{Scheme: "http", Host: kc.Addr}, roots, s.up.addr, kc)
	var kbc *child
	if s.binB != "" {
		auditLog := s.auditLog
		if auditLog != os.DevNull {
			auditLog += "-b"
		}
		var rootsB *x509.CertPool
		kbc, rootsB, err = startKeyhole(ctx, "keyhole-b", s.binB, s.dir, s.up.addr, auditLog, s.env)
		if err != nil {
			_ = bc.Stop()
			_ = kc.Stop()
			return nil, nil, nil, nil, err
		}
		kb = newTarget("keyhole-b", &url.URL{Scheme: "http", Host: kbc.Addr}, rootsB, s.up.addr, kbc)
	}
	if !withSquid || s.noSquid != nil {
		return base, nil, kh, kb, nil
	}
	sc, err := startSquid(ctx, s.dir, s.squidCA, s.up)
	if errors.Is(err, errNoSquid) {
		s.noSquid = err
		return base, nil, kh, kb, nil
	}
	if err != nil {
		_ = bc.Stop()
		_ = kc.Stop()
		if kbc != nil {
			_ = kbc.Stop()
		}
		return nil, nil, nil, nil, err
	}
	sq = newTarget("squid", &url.URL{Scheme: "http", Host: sc.Addr}, s.squidCA.pool(), s.up.addr, sc)
	return base, sq, kh, kb, nil
}

// direct is the target that reaches the upstream without a proxy.
func (s *setup) direct() *target {
	return newTarget("direct", nil, s.upCA.pool(), s.up.addr, nil)
}

// stop stops the proxies and notes what each wrote to stderr while it
// ran, any secret it wrote there, and an unclean exit.
func (b *bench) stop(proxies ...*target) {
	for _, t := range proxies {
		if n := t.proc.log.Lines(); n > 0 {
			b.note("%s (pid %d) wrote %d stderr lines under load; first: %q", t.name, t.proc.Pid(), n, t.proc.log.head())
		}
		if err := t.proc.Stop(); err != nil {
			b.note("%s: %v", t.name, err)
		}
		for _, l := range t.proc.log.Leaks() {
			b.note("LEAK: %s %s", t.name, l)
		}
	}
}

// loadtest is one whole run.
func loadtest(ctx context.Context, o options, stdout, stderr io.Writer) error {
	p := newPlan(o)
	if err := raiseFileLimit(uint64(4*p.Tunnels + 1024)); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "keyhole-loadtest-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	started, loadStart := time.Now(), loadAverage()
	bin := o.keyhole
	if bin == "" {
		fmt.Fprintln(stderr, "building ./cmd/keyhole ...")
		if bin, err = buildKeyhole(ctx, dir, stderr); err != nil {
			return err
		}
	}
	if p.AuditLog == "" {
		p.AuditLog = filepath.Join(dir, "audit.log")
	}
	// Pinned after the build, which should have every CPU.
	var pinned string
	if o.noPin {
		pinned = "proxies not pinned (-no-pin)"
	} else if why := pinCPUs(); why != "" {
		pinned = why
	} else {
		pinned = "proxies pinned to CPU " + proxyCPU + ", clients and upstream on the others"
	}
	s, err := newSetup(dir, bin, p.AuditLog)
	if err != nil {
		return err
	}
	s.env = o.keyholeEnv
	s.binB = o.keyholeB
	if o.keyholeLog != "" {
		f, err := os.Create(o.keyholeLog)
		if err != nil {
			return fmt.Errorf("-keyhole-log: %w", err)
		}
		defer f.Close()
		diag.set(f)
	}
	defer s.up.Close()
	b := newBench(p, s.up, clockTicks(ctx), stderr)
	khRequests, err := b.measure(ctx, s)
	if err != nil {
		return err
	}
	if err := s.up.Close(); err != nil {
		b.note("%v", err)
	}
	b.noteResults()
	b.checkAudit(p.AuditLog, khRequests)
	loadEnd := loadAverage()
	if cpus := float64(runtime.NumCPU()); loadStart > cpus || loadEnd > cpus {
		b.note("other work shared the machine (load average %.1f at the start, %.1f at the end, on %d CPUs): expect noisy rounds", loadStart, loadEnd, runtime.NumCPU())
	}
	rows := b.rows()
	fmt.Fprintf(stdout, "keyhole vs no proxy (direct), bare goproxy v1.9.3 (baseline) and Squid ssl-bump: %d round(s) of %s, median of rounds, %d CPUs, %s, load average %.1f → %.1f, %s\n\n",
		p.Rounds, p.Duration, runtime.NumCPU(), pinned, loadStart, loadEnd, time.Since(started).Round(time.Second))
	if err := printTable(stdout, rows, b.notes); err != nil {
		return err
	}
	if o.jsonPath == "" {
		return nil
	}
	return writeJSON(o.jsonPath, results{
		Started: started,
		Plan:    p,
		Machine: machine{GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), ClkTck: b.clkTck, Keyhole: bin, Pinning: pinned, LoadStart: num(loadStart), LoadEnd: num(loadEnd)},
		Rows:    rows,
		Rounds:  b.samples,
		Errors:  b.errorSummary(),
		Notes:   b.notes,
	})
}

// measure runs every scenario, and returns how many requests keyhole was
// sent, across both of its processes.
func (b *bench) measure(ctx context.Context, s *setup) (int64, error) {
	base, sq, kh, kb, err := s.start(ctx, true)
	if err != nil {
		return 0, err
	}
	proxies := []*target{base, kh}
	if sq != nil {
		proxies = []*target{base, sq, kh}
	} else {
		b.note("squid: %v", s.noSquid)
	}
	if kb != nil {
		proxies = append(proxies, kb)
	}
	if err := b.throughputScenarios(ctx, s.direct(), proxies); err != nil {
		b.stop(proxies...)
		return 0, err
	}
	b.stop(proxies...)
	requests := kh.requests.Load()

	if !b.plan.runs(sIdle) {
		return requests, nil
	}
	// Idle tunnels are measured on fresh processes: after the load above,
	// their heaps would have free space that tunnels could fill unseen.
	base, _, kh, kb, err = s.start(ctx, false)
	if err != nil {
		return 0, err
	}
	proxies = []*target{base, kh}
	if kb != nil {
		proxies = append(proxies, kb)
	}
	defer b.stop(proxies...)
	for _, t := range proxies {
		if _, err := t.fetch(ctx, keepAlive, "/small", smallSize); err != nil {
			return 0, fmt.Errorf("first request through the fresh %s: %w", t.name, err)
		}
		t.keepAlive.CloseIdleConnections()
		smp, e, err := b.idleTunnels(ctx, t)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", sIdle, t.name, err)
		}
		b.record(sIdle, t, smp, e)
		fmt.Fprintf(b.progress, "%-16s round 1/1  %-8s %s\n", sIdle, t.name, brief(smp))
	}
	return requests + kh.requests.Load(), nil
}

// throughputScenarios runs the selected scenarios that compare speed, in
// order.
func (b *bench) throughputScenarios(ctx context.Context, direct *target, proxies []*target) error {
	all := append([]*target{direct}, proxies...)
	if err := b.warmUp(ctx, all); err != nil {
		return err
	}
	p := b.plan
	steps := []struct {
		name string
		run  func() error
	}{
		{sKeepAlive, func() error {
			if err := b.rounds(ctx, sKeepAlive, all, b.throughput(load{keepAlive, "/small", smallSize, p.Workers})); err != nil {
				return err
			}
			return b.peakRSS(proxies)
		}},
		{sClose, func() error {
			return b.rounds(ctx, sClose, all, b.throughput(load{connClose, "/small", smallSize, p.ConnWorkers}))
		}},
		{sHangUp, func() error {
			return b.rounds(ctx, sHangUp, all, b.throughput(load{hangUp, "/small", smallSize, p.ConnWorkers}))
		}},
		{sLarge, func() error {
			return b.rounds(ctx, sLarge, all, b.throughput(load{keepAlive, "/large", largeSize, p.LargeWorkers}))
		}},
		{sSSE, func() error { return b.sseRounds(ctx, direct, proxies) }},
		{sH2, func() error { return b.h2Rounds(ctx, goproxies(proxies)) }},
	}
	for _, st := range steps {
		if !p.runs(st.name) {
			continue
		}
		if err := st.run(); err != nil {
			return err
		}
	}
	return nil
}

// goproxies returns the proxies built on goproxy (the baseline and
// keyhole), which speak HTTP/2 to clients; Squid does not.
func goproxies(proxies []*target) []*target {
	var out []*target
	for _, t := range proxies {
		if t.name != "squid" {
			out = append(out, t)
		}
	}
	return out
}

// noteResults adds the notes that explain the table: the direct SSE
// reference, failed requests, upstream connection reuse and fd leaks.
func (b *bench) noteResults() {
	if b.plan.runs(sSSE) {
		b.note("sse direct (no proxy): event delay p50 %.3f ms, p99 %.3f ms", b.median(sSSE, "direct", mP50), b.median(sSSE, "direct", mP99))
	}
	for _, scn := range []string{sKeepAlive, sClose, sHangUp, sLarge, sSSE, sIdle, sH2} {
		for _, tgt := range []string{"baseline", "keyhole", "keyhole-b", "direct"} {
			if e := b.errs[scn][tgt]; e != nil && e.n > 0 {
				b.note("%s: %s had %d failed requests; first: %v", scn, tgt, e.n, e.first)
			}
		}
	}
	for _, scn := range []string{sClose, sHangUp} {
		if v := b.median(scn, "keyhole", mUpstreamConns); v > 10 {
			b.note("%s: keyhole opened %.0f upstream connections per 1000 requests (it should reuse them)", scn, v)
		}
	}
	for _, tgt := range []string{"baseline", "keyhole"} {
		before, after := b.median(sIdle, tgt, mFDsBefore), b.median(sIdle, tgt, mFDsAfter)
		if after > before+16 {
			b.note("%s: %.0f open files 3 s after its idle tunnels closed, %.0f before them (leak?)", tgt, after, before)
		}
	}
}

// checkAudit counts keyhole's audit records against the requests it was
// sent, and makes sure no record holds the secret value.
func (b *bench) checkAudit(path string, requests int64) {
	if path == os.DevNull {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		b.note("audit log: %v", err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	secret := []byte(benchSecret)
	var n int64
	for sc.Scan() {
		n++
		if i := bytes.Index(sc.Bytes(), secret); i >= 0 {
			b.note("LEAK: audit record %d holds the secret BENCH at offset %d", n, i)
		}
	}
	if err := sc.Err(); err != nil {
		b.note("audit log: %v", err)
	}
	b.note("keyhole wrote %d audit records for %d requests sent to it", n, requests)
}
