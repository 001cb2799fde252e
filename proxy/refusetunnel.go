package proxy

import (
	"net/http"

	"keyhole/inject"
)

// A CONNECT refused for policy (egress denied, a private address, a
// token's host limit) is not refused on the CONNECT response: clients
// print that only as "CONNECT tunnel failed, response 403" or "Tunnel
// connection failed: 403 Forbidden", and the agent learns nothing it can
// act on. keyhole opens the tunnel instead, without dialing anything,
// completes the TLS handshake with a leaf for the requested name, and
// answers every request inside it with the JSON refusal, which the client
// shows like any response. The CONNECT itself leaves no audit record; each
// request inside leaves one. Failed proxy authentication (407, which
// clients handle on the CONNECT), a target that is not a valid host and
// shutdown are still refused on the CONNECT.

// refusedInsideTunnel reports whether a CONNECT refused for reason is
// answered inside the tunnel.
func refusedInsideTunnel(reason inject.Reason) bool {
	switch reason {
	case inject.EgressDenied, inject.PrivateAddress, inject.HostNotAllowed:
		return true
	}
	return false
}

// refuseInTunnel answers a request inside a tunnel opened for a refused
// CONNECT with the CONNECT's refusal (or host_mismatch, for a request to
// another host), and its own audit record. Nothing is dialed. The tunnel
// closes after the answer, so that a client's next request opens a new
// one, decided under the rules then in force.
func (p *Proxy) refuseInTunnel(req *http.Request, t *tunnel) *http.Response {
	x := p.newExchange(req, t.caller, t.conn)
	ref := t.refusal
	if _, mismatch := x.target(&t.dest); mismatch != nil {
		ref = mismatch
	}
	resp := x.refuse(ref)
	resp.Close = true
	return resp
}
