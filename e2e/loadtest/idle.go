package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// idleTunnels opens the plan's number of MITM tunnels to t, each making one
// request and then staying open and idle, and measures the proxy's RSS
// before and with them open: (after − before)/n is the memory an idle
// tunnel costs. It also counts the proxy's file descriptors before, with
// the tunnels open, and after they are closed, to catch a leak.
func (b *bench) idleTunnels(ctx context.Context, t *target) (sample, errorLog, error) {
	pid := t.proc.Pid()
	before, err := readMemory(pid)
	if err != nil {
		return nil, errorLog{}, err
	}
	fds0, err := openFiles(pid)
	if err != nil {
		return nil, errorLog{}, err
	}
	n := b.plan.Tunnels
	trs := make([]*http.Transport, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs errorLog
		sem  = make(chan struct{}, 16)
	)
	for i := range trs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tr := t.transport(false)
			t.requests.Add(1)
			_, err := get(ctx, tr, "/small", smallSize)
			mu.Lock()
			defer mu.Unlock()
			errs.add(err)
			trs[i] = tr
		})
	}
	wg.Wait()
	defer func() {
		for _, tr := range trs {
			tr.CloseIdleConnections()
		}
	}()
	if err := sleep(ctx, time.Second); err != nil {
		return nil, errorLog{}, err
	}
	with, err := readMemory(pid)
	if err != nil {
		return nil, errorLog{}, err
	}
	fds1, err := openFiles(pid)
	if err != nil {
		return nil, errorLog{}, err
	}
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
	// The proxy may keep a pooled upstream connection per opener.
	fds2, err := settledFiles(ctx, pid, fds0+cap(sem))
	if err != nil {
		return nil, errorLog{}, err
	}
	opened := n - errs.n
	return sample{
		mTunnels:      float64(opened),
		mErrors:       float64(errs.n),
		mKiBPerTunnel: (float64(with.RSSKiB) - float64(before.RSSKiB)) / float64(max(opened, 1)),
		mRSSBefore:    float64(before.RSSKiB) / 1024,
		mRSSTunnels:   float64(with.RSSKiB) / 1024,
		mFDsBefore:    float64(fds0),
		mFDsOpen:      float64(fds1),
		mFDsAfter:     float64(fds2),
	}, errs, nil
}

// settledFiles waits up to 3s for process pid's open files to fall back to
// want, and returns the last count.
func settledFiles(ctx context.Context, pid, want int) (int, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		n, err := openFiles(pid)
		if err != nil || n <= want || time.Now().After(deadline) {
			return n, err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return n, err
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}
