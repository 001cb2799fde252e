package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"keyhole/audit"
	"keyhole/inject"
)

// refusalBody is the JSON an agent gets for a refused request.
type refusalBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
	Secret string `json:"secret,omitempty"`
	Host   string `json:"host,omitempty"`
	// Budget names the budget that refused a budget_exceeded request.
	Budget    *budgetBody `json:"budget,omitempty"`
	RequestID string      `json:"request_id"`
}

// markDenied records ref as the outcome of rec.
func markDenied(rec *audit.Record, ref *inject.Refusal) {
	rec.Status, rec.Decision, rec.Reason = ref.Status(), audit.Deny, string(ref.Reason)
}

// auditRefusal writes the record of a refusal decided outside an exchange
// (a CONNECT, a TLS handshake, a plain request refused before handling).
func (p *Proxy) auditRefusal(rec *audit.Record, ref *inject.Refusal) {
	markDenied(rec, ref)
	rec.Duration = time.Since(rec.Time)
	p.writeAudit(rec)
}

// refusalResponse renders ref as the response to req.
func refusalResponse(req *http.Request, ref *inject.Refusal, requestID string) *http.Response {
	return renderRefusal(req, ref, requestID, nil)
}

// renderRefusal renders ref, with the budget that refused it when b is
// not nil.
func renderRefusal(req *http.Request, ref *inject.Refusal, requestID string, b *budgetBody) *http.Response {
	body, _ := json.Marshal(refusalBody{
		Error:     ref.Message,
		Reason:    string(ref.Reason),
		Secret:    ref.Secret,
		Host:      ref.Host,
		Budget:    b,
		RequestID: requestID,
	})
	body = append(body, '\n')
	status := ref.Status()
	h := http.Header{
		"Content-Type":         {"application/json"},
		"Content-Length":       {strconv.Itoa(len(body))},
		"Cache-Control":        {"no-store"},
		"X-Keyhole-Reason":     {string(ref.Reason)},
		"X-Keyhole-Request-Id": {requestID},
	}
	if status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", `Basic realm="keyhole"`)
	}
	if b != nil {
		h.Set("Retry-After", strconv.Itoa(b.RetryAfter))
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          refusalReader{bytes.NewReader(body)},
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// refusalReader is the body of a refusal keyhole wrote, which tells it
// apart from an upstream's response.
type refusalReader struct{ *bytes.Reader }

func (refusalReader) Close() error { return nil }

// isRefusal reports whether resp is a refusal keyhole wrote.
func isRefusal(resp *http.Response) bool {
	_, ok := resp.Body.(refusalReader)
	return ok
}
