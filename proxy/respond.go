package proxy

import (
	"io"
	"net/http"
	"sync"
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
	scrubbed := 0
	for k, vs := range resp.Header {
		for i, v := range vs {
			nv, n := rep.ReplaceString(v)
			if n > 0 {
				vs[i] = nv
				scrubbed += n
			}
		}
		resp.Header[k] = vs
	}
	removeHopHeaders(resp.Header, resp.StatusCode == http.StatusSwitchingProtocols)
	x.rec.Status = resp.StatusCode
	x.rec.Decision = audit.Allow
	r := rep.NewReader(resp.Body)
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Body = &auditedBody{r: r, finish: func(n int64, err error) {
		x.rec.BytesOut = n
		x.rec.Scrubbed = scrubbed + r.Count()
		x.finish()
	}}
	return resp
}

// refuse answers the exchange with a refusal and writes its audit record.
func (x *exchange) refuse(ref *inject.Refusal) *http.Response {
	x.rec.Status = ref.Status()
	x.rec.Decision = audit.Deny
	x.rec.Reason = string(ref.Reason)
	if x.rec.Host == "" {
		x.rec.Host = ref.Host
	}
	resp := refusalResponse(x.req, ref, x.rec.RequestID)
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

// auditedBody counts the bytes delivered and calls finish once, at EOF, on
// a read error or on Close, whichever comes first.
type auditedBody struct {
	r      io.ReadCloser
	n      int64
	once   sync.Once
	finish func(n int64, err error)
}

func (b *auditedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil {
		b.once.Do(func() { b.finish(b.n, err) })
	}
	return n, err
}

func (b *auditedBody) Close() error {
	err := b.r.Close()
	b.once.Do(func() { b.finish(b.n, nil) })
	return err
}
