package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// sseRounds measures, round after round, the delay from the upstream's
// write of each event to the client's read, directly (the reference) and
// through each proxy. All run at the same time, their streams
// interleaved, so that a hiccup of the shared machine lands on all of them
// alike; each proxy's added delay is its percentile minus direct's in the
// same round. Each round starts right after a burst of load on every
// proxy at once (see burst): streams must stay steady then, and no proxy
// is favoured by having been quiet longer than another. The proxies take
// turns in the order their events arrive (sseSlot). Before each burst
// every target's pools, the proxies' upstream pools too, are filled with a
// connection for each stream (see warm): a round measures streams, not the
// TLS handshakes of connections that idle timeouts closed since the
// keep-alive scenario, which all land on the tool's one upstream CPU.
func (b *bench) sseRounds(ctx context.Context, direct *target, proxies []*target) error {
	targets := append([]*target{direct}, proxies...)
	for r := range b.plan.Rounds {
		for _, t := range targets {
			if errs := t.warm(ctx, b.plan.Streams); errs.n > 0 {
				b.note("%s: %d of %s's %d streams before round %d failed; first: %v", sSSE, errs.n, t.name, b.plan.Streams, r+1, errs.first)
			}
		}
		b.burst(ctx, proxies, sseBurst)
		samples := make([]sample, len(targets))
		errs := make([]errorLog, len(targets))
		var wg sync.WaitGroup
		diag.line("loadtest: %s round %d starts", sSSE, r+1)
		for j, t := range targets {
			slot := sseSlot(j, r, len(targets))
			wg.Go(func() { samples[j], errs[j] = b.sse(ctx, t, slot, len(targets)) })
		}
		wg.Wait()
		diag.line("loadtest: %s round %d ends", sSSE, r+1)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s round %d: %w", sSSE, r+1, err)
		}
		for j, t := range targets {
			s := samples[j]
			if j > 0 {
				s[mAddedP50] = s[mP50] - samples[0][mP50]
				s[mAddedP99] = s[mP99] - samples[0][mP99]
				// proxies[0] is the baseline.
				s[mOverBaseP99] = s[mP99] - samples[1][mP99]
			}
			b.record(sSSE, t, s, errs[j])
			fmt.Fprintf(b.progress, "%-16s round %d/%d  %-8s %s\n", sSSE, r+1, b.plan.Rounds, t.name, brief(s))
		}
	}
	return nil
}

// sseSlot is target j's slot in round r of slots targets: direct
// (j 0) keeps slot 0, the proxies' order rotates by one each round, so
// that no proxy's events always follow the same other proxy's on the
// shared proxy CPU (a slow neighbour's event delays the next in line).
func sseSlot(j, r, slots int) int {
	if j == 0 {
		return j
	}
	return 1 + (j-1+r)%(slots-1)
}

// sse opens the plan's number of event streams to t and collects every
// event's delay. Stream i of target slot (of slots) starts at offset
// (i*slots+slot) × interval/(streams*slots), so that across all targets
// one event arrives at a time, evenly spread: the delay measured is the
// path's, not a burst's queue.
func (b *bench) sse(ctx context.Context, t *target, slot, slots int) (sample, errorLog) {
	var (
		mu     sync.Mutex
		delays []time.Duration
		errs   errorLog
		wg     sync.WaitGroup
	)
	n := b.plan.Streams
	gap := sseInterval / time.Duration(n*slots)
	for i := range n {
		wg.Go(func() {
			if err := sleep(ctx, time.Duration(i*slots+slot)*gap); err != nil {
				return
			}
			t.requests.Add(1)
			d, err := stream(ctx, t.keepAlive, t.name)
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, d...)
			errs.add(err)
		})
	}
	wg.Wait()
	slices.Sort(delays)
	return sample{
		mEvents: float64(len(delays)),
		mErrors: float64(errs.n),
		mP50:    ms(percentile(delays, 50)),
		mP99:    ms(percentile(delays, 99)),
	}, errs
}

// warm makes sure t's keep-alive pool, and a proxy's pool of upstream
// connections, hold at least n connections: n event streams at once (a
// stream holds its connections, both legs, until its last event), each
// holding its connection until all n have their answer. Pooled connections
// are reused, so pools that hold them already open none.
func (t *target) warm(ctx context.Context, n int) errorLog {
	var (
		answered sync.WaitGroup
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     errorLog
	)
	answered.Add(n)
	for range n {
		wg.Go(func() {
			t.requests.Add(1)
			resp, err := roundTrip(ctx, t.keepAlive, "/sse")
			answered.Done()
			answered.Wait()
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			errs.add(err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errs
}

// sseBurst is how long the burst before each SSE round lasts.
const sseBurst = time.Second

// Clients per proxy in the burst: keep-alive 1 KiB requests (a request
// rate that moves keyhole's collector target, see gctune) and 1 MiB
// downloads (large buffers, then garbage).
const (
	burstSmall = 8
	burstLarge = 2
)

// burst drives every proxy at once, for d, with 1 KiB requests and 1 MiB
// downloads, then returns at once. Failed requests are noted: they are
// not the scenario's, but a proxy that fails under the burst is news.
func (b *bench) burst(ctx context.Context, proxies []*target, d time.Duration) {
	diag.line("loadtest: burst before an sse round starts")
	deadline := time.Now().Add(d)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed = map[string]int{}
	)
	for _, t := range proxies {
		for i := range burstSmall + burstLarge {
			path, size := "/small", int64(smallSize)
			if i >= burstSmall {
				path, size = "/large", largeSize
			}
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(deadline) {
					if _, err := t.fetch(ctx, keepAlive, path, size); err != nil && ctx.Err() == nil {
						mu.Lock()
						failed[t.name]++
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	for _, t := range proxies {
		if n := failed[t.name]; n > 0 {
			b.note("%s: %s failed %d requests of the burst before a round", sSSE, t.name, n)
		}
	}
}

// lateEvent is the delay past which -keyhole-log notes an event.
const lateEvent = 3 * time.Millisecond

// stream reads one /sse response and returns, for each event, the time
// between the upstream's write (the UnixNano in its data line) and the
// moment the client had read the line.
//
// With -keyhole-log, an event that took longer than lateEvent is noted
// there, with its target, so that late events can be matched with what
// keyhole logged (GODEBUG=gctrace=1) at the same moment.
func stream(ctx context.Context, tr http.RoundTripper, name string) ([]time.Duration, error) {
	req, err := newRequest(ctx, "/sse")
	if err != nil {
		return nil, err
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	out := make([]time.Duration, 0, sseEvents)
	br := bufio.NewReaderSize(resp.Body, 4<<10)
	prefix := []byte("data: ")
	for {
		line, err := br.ReadSlice('\n')
		now := time.Now().UnixNano()
		if rest, ok := bytes.CutPrefix(line, prefix); ok && err == nil {
			sent, perr := strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
			if perr != nil {
				return out, fmt.Errorf("read event: %w", perr)
			}
			d := time.Duration(now - sent)
			out = append(out, d)
			if d > lateEvent {
				diag.line("loadtest: sse %s event sent at %s arrived %.1f ms late", name, time.Unix(0, sent).Format("15:04:05.000000"), ms(d))
			}
		}
		if err != nil {
			if len(out) != sseEvents {
				return out, fmt.Errorf("read events: got %d, want %d: %w", len(out), sseEvents, err)
			}
			return out, nil
		}
	}
}
