package proxy

import (
	"net/http"

	lru "github.com/hashicorp/golang-lru/v2"
)

// maxAgentTransports bounds the per-agent transports kept; the least
// recently used one is dropped (its idle connections closed) beyond it.
const maxAgentTransports = 256

// upstreams picks the transport of each upstream request. A request that
// carries no secret uses the shared transport. A request that carries a
// secret uses its agent's own transport, so an upstream connection that
// carried one agent's secret is never used by another agent: over HTTP/2,
// where one connection multiplexes many requests and HPACK keeps a header
// table per connection, a shared connection would let one agent's
// requests probe what another's headers compressed against.
//
// An agent's transport also keeps its HPACK encoder table at one byte, so
// that no header field fits in it: every field it sends (the injected
// credentials among them) goes as a literal never added to the table,
// which no later request can reference or probe for. The HTTP/2 client
// (x/net's, through package transport) cannot mark single fields
// never-indexed (the N bit), so intermediaries that re-encode the request
// may still index them.
type upstreams struct {
	shared upstreamTransport
	agents *lru.Cache[string, upstreamTransport]
	newOne func(perAgent bool) upstreamTransport
}

// upstreamTransport sends the requests of agents upstream: keyhole's own
// client (newClient, package transport), net/http's transport
// (newTransport), or any round tripper that keeps its own pool.
type upstreamTransport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newUpstreams returns the upstreams whose transports newOne makes: the
// shared one (perAgent false) at once, an agent's own on its first request
// with a secret (perAgent true: see agentHeaderTable).
func newUpstreams(newOne func(perAgent bool) upstreamTransport) *upstreams {
	u := &upstreams{shared: newOne(false), newOne: newOne}
	u.agents, _ = lru.NewWithEvict(maxAgentTransports, func(_ string, t upstreamTransport) {
		t.CloseIdleConnections()
	})
	return u
}

// agentHeaderTable is the HPACK encoder table size of an agent's
// transport: smaller than any header field (32 bytes of overhead each), so
// nothing is ever indexed.
const agentHeaderTable = 1

// forRequest returns the transport for a request of agent that carries a
// secret (withSecret) or not.
func (u *upstreams) forRequest(agent string, withSecret bool) upstreamTransport {
	if !withSecret {
		return u.shared
	}
	if t, ok := u.agents.Get(agent); ok {
		return t
	}
	t := u.newOne(true)
	if prev, ok, _ := u.agents.PeekOrAdd(agent, t); ok {
		return prev // another request made it first
	}
	return t
}

// closeIdle closes the idle connections of every transport.
func (u *upstreams) closeIdle() {
	u.shared.CloseIdleConnections()
	for _, t := range u.agents.Values() {
		t.CloseIdleConnections()
	}
}
