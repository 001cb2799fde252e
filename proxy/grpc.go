package proxy

import (
	"net/http"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/scrub"
)

// gRPC messages are length-prefixed, so a scrub that changes a message's
// length would corrupt the stream. A gRPC (or gRPC-Web) response body is
// masked instead: each secret becomes a mask of its own length (see
// scrub.Masker), message by message. Where that is impossible (a
// compressed message when the request carried a secret, a secret shorter
// than its placeholder, a message over scrub.MaxGRPCMessage) the stream
// ends with a gRPC error status (see grpcRefusal) and the audit record
// says why.

// scrubResponse scrubs resp for the agent: masked when its body is gRPC,
// otherwise as Part 1 scrubs every response.
func (x *exchange) scrubResponse(rep *scrub.Replacer, resp *http.Response) (*scrub.Body, error) {
	if resp.StatusCode != http.StatusSwitchingProtocols && scrub.IsGRPC(resp.Header) {
		// Strict always: a compressed message cannot be masked, and a
		// value stored earlier can come back in it whatever this request
		// carried.
		return x.pol.mask.GRPCResponse(rep, resp, true), nil
	}
	return rep.Response(resp, x.req.Method)
}

// refuseGRPCBody records a gRPC response cut off because a message could
// not be masked.
func refuseGRPCBody(rec *audit.Record) {
	rec.Decision, rec.Reason = audit.Deny, string(inject.UnscrubbableEncoding)
	rec.Error = "a gRPC message could not be masked (compressed, over the size limit, or a secret shorter than its placeholder); the stream was ended"
}

// grpcInternal is gRPC's INTERNAL status code.
const grpcInternal = "13"

// grpcRefusal ends an h2 stream whose gRPC response could not be masked
// with a gRPC status in the trailers, after the whole messages already
// sent: the client's call fails with a readable reason instead of a
// corrupt message.
func grpcRefusal(h http.Header) {
	h[http.TrailerPrefix+"Grpc-Status"] = []string{grpcInternal}
	h[http.TrailerPrefix+"Grpc-Message"] = []string{"keyhole: a response message could not be masked at its own length, so the call was ended (reason unscrubbable_encoding)"}
}
