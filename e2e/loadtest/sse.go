package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// sseRounds measures, round after round, the delay from the upstream's
// write of each event to the client's read, for direct (the reference),
// then each proxy; each proxy's added delay is its percentile minus
// direct's in the same round.
func (b *bench) sseRounds(ctx context.Context, direct *target, proxies []*target) error {
	for r := range b.plan.Rounds {
		var ref sample
		for _, t := range append([]*target{direct}, proxies...) {
			s, e, err := b.sse(ctx, t)
			if err != nil {
				return fmt.Errorf("%s round %d %s: %w", sSSE, r+1, t.name, err)
			}
			if t == direct {
				ref = s
			} else {
				s[mAddedP50] = s[mP50] - ref[mP50]
				s[mAddedP99] = s[mP99] - ref[mP99]
			}
			b.record(sSSE, t, s, e)
			fmt.Fprintf(b.progress, "%-16s round %d/%d  %-8s %s\n", sSSE, r+1, b.plan.Rounds, t.name, brief(s))
		}
	}
	return nil
}

// sse opens the plan's number of event streams to t at once and collects
// every event's delay.
func (b *bench) sse(ctx context.Context, t *target) (sample, errorLog, error) {
	var (
		mu     sync.Mutex
		delays []time.Duration
		errs   errorLog
		wg     sync.WaitGroup
	)
	for range b.plan.Streams {
		wg.Go(func() {
			t.requests.Add(1)
			d, err := stream(ctx, t.keepAlive)
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, d...)
			errs.add(err)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, errorLog{}, err
	}
	slices.Sort(delays)
	return sample{
		mEvents: float64(len(delays)),
		mErrors: float64(errs.n),
		mP50:    ms(percentile(delays, 50)),
		mP99:    ms(percentile(delays, 99)),
	}, errs, nil
}

// stream reads one /sse response and returns, for each event, the time
// between the upstream's write (the UnixNano in its data line) and the
// moment the client had read the line.
func stream(ctx context.Context, tr http.RoundTripper) ([]time.Duration, error) {
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
			out = append(out, time.Duration(now-sent))
		}
		if err != nil {
			if len(out) != sseEvents {
				return out, fmt.Errorf("read events: got %d, want %d: %w", len(out), sseEvents, err)
			}
			return out, nil
		}
	}
}
