package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// sample is what one round of one scenario measured on one target, by
// metric name (the m* constants).
type sample map[string]float64

// Metric names, as they appear in the JSON output.
const (
	mRequests      = "requests"
	mErrors        = "errors"
	mReqPerSec     = "req_per_s"
	mP50           = "p50_ms"
	mP99           = "p99_ms"
	mCPUPerReq     = "cpu_us_per_req"
	mCallsPerReq   = "io_syscalls_per_req"  // the proxy's read and write system calls per request
	mSysPerReq     = "sys_cpu_us_per_req"   // the kernel's share of mCPUPerReq (stime)
	mWaitPerReq    = "runq_wait_us_per_req" // time the proxy's threads were runnable but had no CPU, per request
	mSwitchPerReq  = "ctx_switches_per_req" // the proxy's threads' context switches per request
	mUpstreamConns = "upstream_conns_per_1000_req"
	mMBPerSec      = "mb_per_s"
	mCPUPerMiB     = "cpu_us_per_mib"
	mAddedP50      = "added_p50_ms"
	mAddedP99      = "added_p99_ms"
	mOverBaseP99   = "p99_over_baseline_ms" // a proxy's SSE p99 minus the baseline's, same round
	mEvents        = "events"
	mKiBPerTunnel  = "kib_per_idle_tunnel"
	mTunnels       = "tunnels"
	mRSSBefore     = "rss_before_mib"
	mRSSTunnels    = "rss_with_tunnels_mib"
	mFDsBefore     = "fds_before"
	mFDsOpen       = "fds_with_tunnels"
	mFDsAfter      = "fds_after_close"
	mPeakRSS       = "peak_rss_mib"
)

// Scenario names, as they appear in the JSON output.
const (
	sIdle      = "idle_tunnels"
	sKeepAlive = "keepalive_small"
	sPeak      = "keepalive_peak"
	sClose     = "newconn_close"
	sHangUp    = "newconn_hangup"
	sLarge     = "large_download"
	sSSE       = "sse"
	sH2        = "h2_multiplexed"
)

// load is one throughput scenario: workers clients fetching path in mode
// as fast as they can.
type load struct {
	mode    connMode
	path    string
	size    int64
	workers int
}

// bench holds the run's state: what to drive, how long, and what was
// measured so far.
type bench struct {
	plan     plan
	up       *upstream
	clkTck   float64
	progress io.Writer

	samples map[string]map[string][]sample // scenario → target → one per round
	errs    map[string]map[string]*errorLog
	notes   []string
}

func newBench(p plan, up *upstream, clkTck float64, progress io.Writer) *bench {
	return &bench{
		plan: p, up: up, clkTck: clkTck, progress: progress,
		samples: map[string]map[string][]sample{},
		errs:    map[string]map[string]*errorLog{},
	}
}

// record stores one round's sample and errors.
func (b *bench) record(scn string, t *target, s sample, e errorLog) {
	if b.samples[scn] == nil {
		b.samples[scn] = map[string][]sample{}
		b.errs[scn] = map[string]*errorLog{}
	}
	b.samples[scn][t.name] = append(b.samples[scn][t.name], s)
	if b.errs[scn][t.name] == nil {
		b.errs[scn][t.name] = &errorLog{}
	}
	b.errs[scn][t.name].merge(e)
}

// note adds a line to the report's notes.
func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// rounds runs measure on each target in turn, round after round (A B A B
// ...), so that both proxies meet the same machine conditions.
func (b *bench) rounds(ctx context.Context, scn string, targets []*target, measure func(context.Context, *target) (sample, errorLog, error)) error {
	for r := range b.plan.Rounds {
		for _, t := range targets {
			diag.line("loadtest: %s round %d %s starts", scn, r+1, t.name)
			s, e, err := measure(ctx, t)
			if err != nil {
				return fmt.Errorf("%s round %d %s: %w", scn, r+1, t.name, err)
			}
			b.record(scn, t, s, e)
			fmt.Fprintf(b.progress, "%-16s round %d/%d  %-8s %s\n", scn, r+1, b.plan.Rounds, t.name, brief(s))
		}
	}
	return nil
}

// throughput returns the measure function of a load.
func (b *bench) throughput(l load) func(context.Context, *target) (sample, errorLog, error) {
	return func(ctx context.Context, t *target) (sample, errorLog, error) {
		return b.runLoad(ctx, t, l)
	}
}

// runLoad drives t with l for the plan's duration and measures the rate,
// latency, bytes, the proxy's CPU and the upstream connections opened.
func (b *bench) runLoad(ctx context.Context, t *target, l load) (sample, errorLog, error) {
	user0, sys0, err := t.cpuTicks()
	if err != nil {
		return nil, errorLog{}, err
	}
	calls0, err := t.ioCalls()
	if err != nil {
		return nil, errorLog{}, err
	}
	sched0, err := t.sched()
	if err != nil {
		return nil, errorLog{}, err
	}
	conns0 := b.up.Conns()
	start := time.Now()
	deadline := start.Add(b.plan.Duration)
	type worker struct {
		lat   []time.Duration
		bytes int64
		errs  errorLog
	}
	ws := make([]worker, l.workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &ws[i]
		w.lat = make([]time.Duration, 0, 16<<10)
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				n, err := t.fetch(ctx, l.mode, l.path, l.size)
				if err != nil {
					w.errs.add(err)
					continue
				}
				w.lat = append(w.lat, time.Since(t0))
				w.bytes += n
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return nil, errorLog{}, err
	}
	user1, sys1, err := t.cpuTicks()
	if err != nil {
		return nil, errorLog{}, err
	}
	calls1, err := t.ioCalls()
	if err != nil {
		return nil, errorLog{}, err
	}
	sched1, err := t.sched()
	if err != nil {
		return nil, errorLog{}, err
	}
	var lat []time.Duration
	var bytes int64
	var errs errorLog
	for _, w := range ws {
		lat = append(lat, w.lat...)
		bytes += w.bytes
		errs.merge(w.errs)
	}
	slices.Sort(lat)
	n := float64(len(lat))
	cpuUS := float64(user1-user0+sys1-sys0) / b.clkTck * 1e6
	sysUS := float64(sys1-sys0) / b.clkTck * 1e6
	s := sample{
		mRequests:      n,
		mErrors:        float64(errs.n),
		mReqPerSec:     n / elapsed.Seconds(),
		mP50:           ms(percentile(lat, 50)),
		mP99:           ms(percentile(lat, 99)),
		mUpstreamConns: float64(b.up.Conns()-conns0) * 1000 / max(n, 1),
	}
	if t.proc != nil {
		s[mCPUPerReq] = cpuUS / max(n, 1)
		s[mSysPerReq] = sysUS / max(n, 1)
		s[mCallsPerReq] = float64(calls1-calls0) / max(n, 1)
		// Threads that started during the round count from 0, those that
		// ended are lost: the difference is an estimate, never negative.
		s[mWaitPerReq] = float64(sched1.waitNS-min(sched0.waitNS, sched1.waitNS)) / 1e3 / max(n, 1)
		s[mSwitchPerReq] = float64(sched1.switches-min(sched0.switches, sched1.switches)) / max(n, 1)
	}
	if l.size >= largeSize {
		s[mMBPerSec] = float64(bytes) / 1e6 / elapsed.Seconds()
		if t.proc != nil {
			s[mCPUPerMiB] = cpuUS / max(float64(bytes)/(1<<20), 1e-9)
		}
	}
	return s, errs, nil
}

// warmUp makes each proxy mint its leaf, fill its upstream pool and open
// the keep-alive connections the clients will reuse, so that no round pays
// for one-off work.
func (b *bench) warmUp(ctx context.Context, targets []*target) error {
	for _, t := range targets {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs errorLog
		for range b.plan.Workers {
			wg.Go(func() {
				for range 20 {
					_, err := t.fetch(ctx, keepAlive, "/small", smallSize)
					mu.Lock()
					errs.add(err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if errs.first != nil {
			return fmt.Errorf("warm up %s: %d of %d requests failed; first: %w", t.name, errs.n, 20*b.plan.Workers, errs.first)
		}
	}
	return ctx.Err()
}

// peakRSS reads each proxy's VmHWM, its peak RSS since it started.
func (b *bench) peakRSS(targets []*target) error {
	for _, t := range targets {
		m, err := readMemory(t.proc.Pid())
		if err != nil {
			return err
		}
		b.record(sPeak, t, sample{mPeakRSS: float64(m.PeakKiB) / 1024}, errorLog{})
	}
	return nil
}

// brief is a sample's headline for the progress lines.
func brief(s sample) string {
	keys := []string{mReqPerSec, mMBPerSec, mP50, mP99, mCPUPerReq, mCallsPerReq, mUpstreamConns, mAddedP99, mKiBPerTunnel, mErrors}
	var out string
	for _, k := range keys {
		if v, ok := s[k]; ok {
			out += fmt.Sprintf(" %s=%.4g", k, v)
		}
	}
	return out
}
