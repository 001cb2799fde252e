package main

import (
	"context"
	"fmt"
	"net/http"
)

// The h2_multiplexed scenario: h2Clients clients, each with one HTTP/2
// connection through the proxy, share the keep-alive scenario's number of
// workers, so each connection carries Workers/h2Clients concurrent
// streams of 1 KiB responses. The upstream leg is HTTP/1.1 for both
// proxies (the upstream offers only http/1.1), so the figures compare the
// agent-side HTTP/2 machinery.
const h2Clients = 4

// h2Transports returns the target's HTTP/2 clients: transports that force
// h2 and open at most one connection each.
func (t *target) h2Transports() []*http.Transport {
	out := make([]*http.Transport, h2Clients)
	for i := range out {
		tr := t.transport(false)
		tr.ForceAttemptHTTP2 = true
		tr.MaxConnsPerHost = 1
		out[i] = tr
	}
	return out
}

// h2Client picks the next HTTP/2 client, round robin.
func (t *target) h2Client() *http.Transport {
	return t.h2[t.requests.Load()%int64(len(t.h2))]
}

// h2Rounds checks that every client speaks HTTP/2 to each proxy, then runs
// the scenario's rounds.
func (b *bench) h2Rounds(ctx context.Context, proxies []*target) error {
	for _, t := range proxies {
		for _, tr := range t.h2 {
			req, err := newRequest(ctx, "/small")
			if err != nil {
				return err
			}
			t.requests.Add(1)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return fmt.Errorf("%s %s: %w", sH2, t.name, err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				return fmt.Errorf("%s %s: got %s, want HTTP/2", sH2, t.name, resp.Proto)
			}
		}
	}
	return b.rounds(ctx, sH2, proxies, b.throughput(load{h2Mux, "/small", smallSize, b.plan.Workers}))
}
