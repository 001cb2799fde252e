package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/scrub"
)

// respond scrubs an upstream response for the agent and arranges for the
// audit record to be written when its body is done.
func (x *exchange) respond(resp *http.Response, res inject.Result) *http.Response {
	rep := x.pol.scrub
	if len(res.SwapBack) > 0 {
		pairs := make([]scrub.Pair, len(res.SwapBack))
		for i, sb := range res.SwapBack {
			pairs[i] = scrub.Pair{Find: sb.Sent.Reveal(), Replace: sb.Original}
		}
		rep = scrub.Chain(rep, scrub.NewPairs(pairs))
	}
	if len(x.scrubs) > 0 {
		rep = scrub.Chain(append([]*scrub.Replacer{rep}, x.scrubs...)...)
	}
	// After a 101 the body is the upgraded connection, which the scrubber
	// writes to as well. A body without a length (SSE, chunked) is a
	// stream: it is passed on as it arrives, never held for a bulk write.
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = newIdleBody(resp.Body, x.p.cfg.IdleTimeout, x.conn, resp.ContentLength < 0)
	}
	body, err := x.scrubResponse(rep, resp)
	if err != nil {
		resp.Body.Close()
		return x.refuse(inject.Refuse(inject.UnscrubbableEncoding, "", x.rec.Host,
			"the response from %s uses an encoding keyhole cannot decode to remove secrets, so it was not passed on; ask without Accept-Encoding", x.rec.Host))
	}
	removeHopHeaders(resp.Header, resp.StatusCode == http.StatusSwitchingProtocols)
	x.rec.Status = resp.StatusCode
	x.rec.Decision = audit.Allow
	body.OnDone(func(st scrub.BodyStats) {
		x.rec.Scrubbed = st.Scrubbed
		x.rec.BytesOut = st.Bytes
		var gone *agentGoneError
		switch {
		case errors.Is(st.Err, scrub.ErrUnmaskable):
			refuseGRPCBody(&x.rec)
		case errors.Is(st.Err, context.Canceled), errors.As(st.Err, &gone),
			st.Err == nil && !st.Complete && bodyAllowed(x.req.Method, resp.StatusCode):
			// net/http cancels a plain-HTTP request when its client hangs up.
			x.rec.Error = "the agent left before the end of the response"
		case st.Err != nil:
			x.rec.Error = "upstream body: " + describeUpstreamError(st.Err)
		}
		x.finish()
	})
	return resp
}

// refuse answers the exchange with a refusal and writes its audit record.
func (x *exchange) refuse(ref *inject.Refusal) *http.Response {
	return x.refuseWith(ref, nil)
}

// refuseWith is refuse, naming in the refusal the budget b that refused
// the request when b is not nil.
func (x *exchange) refuseWith(ref *inject.Refusal, b *budgetBody) *http.Response {
	markDenied(&x.rec, ref)
	if x.rec.Host == "" {
		x.rec.Host = ref.Host
	}
	if x.rec.Secrets == nil {
		// Nothing was injected: record what the request asked for.
		x.rec.Secrets = inject.Named(x.pol.set, x.req.Header)
	}
	resp := renderRefusal(x.req, ref, x.rec.RequestID, b)
	x.finish()
	return resp
}

// finish writes the audit record once.
func (x *exchange) finish() {
	if x.done {
		return
	}
	x.done = true
	x.rec.Duration = time.Since(x.rec.Time)
	x.p.writeAudit(&x.rec)
	x.p.inflight.Add(-1)
}
