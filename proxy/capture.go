package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"keyhole/inject"
	"keyhole/rules"
	"keyhole/scrub"
	"keyhole/secret"
	"keyhole/store"
)

// Bounds of a captured response.
const (
	// maxCaptureBody bounds a response that matched a capture rule, once
	// decoded: it is read whole to find its field. A longer one is refused
	// with capture_failed (too_large).
	maxCaptureBody = 1 << 20
	// maxCaptureWire bounds the same body as it arrives, still encoded.
	maxCaptureWire = 8 << 20
	// captureIDBytes is the random part of a captured secret's name,
	// NAME_<id>: 4 bytes, 8 hex digits.
	captureIDBytes = 4
)

// captureRule returns the first capture rule of set for the request to t
// with header h, or nil. It errs on the side of capturing: a method
// override naming the rule's method matches it, and so does a path the
// upstream may read as the rule's (with a trailing slash, or not
// canonical: dot or empty segments, encoded slashes), since an upstream
// that minted a credential for a request the rule missed would hand it
// to the agent.
func captureRule(set *rules.Set, t inject.Target, h http.Header) *rules.Capture {
	for _, c := range set.Captures {
		switch {
		case !c.Host.Match(t.Host, t.Port, t.DefaultPort()):
		case c.Method != "" && c.Method != t.Method && !inject.OverridesMethod(h, c.Method):
		case c.Path != nil && !c.Path.Match(t.Path) && !c.Path.Match(strings.TrimSuffix(t.Path, "/")) && t.CanonicalPath():
		default:
			return c
		}
	}
	return nil
}

// captures reports whether a response to the exchange's request, with this
// status, is for the capture rule c: a 2xx with a body.
func captures(c *rules.Capture, method string, status int) bool {
	return c != nil && status >= 200 && status < 300 && bodyAllowed(method, status)
}

// capture turns resp, the 2xx response to a request that matched the
// capture rule c, into what the agent gets: the field the rule names is
// stored as a new secret NAME_<id> of the agent that asked (origin
// captured, the rule's policy and ttl), put in force at once, and replaced
// by its placeholder; the body is sent decoded (identity), with its
// length, and is scrubbed by the policy that now holds the new secret. It
// fails closed: whatever prevents the capture, the agent gets
// capture_failed and none of the upstream's response.
func (x *exchange) capture(c *rules.Capture, resp *http.Response) (*http.Response, *inject.Refusal) {
	defer resp.Body.Close()
	out, name, err := x.captureBody(c, resp)
	if err != nil {
		class := classOf(err)
		x.rec.CaptureError = class
		x.p.log.Warn("capture failed: the response was not passed on", "request_id", x.rec.RequestID,
			"host", x.rec.Host, "path", x.rec.Path, "rule_line", c.Line, "reason", class)
		return nil, inject.Refuse(inject.CaptureFailed, "", x.rec.Host,
			"the response from %s matched a capture rule but could not be captured (%s), so none of it was passed on; the operator's log says more",
			x.rec.Host, class)
	}
	x.rec.Captured = []string{name}
	_ = x.p.audit.Event(time.Now(), "capture", slog.String("agent", x.caller.Agent),
		slog.String("secret", name), slog.String("host", x.rec.Host), slog.String("request_id", x.rec.RequestID))
	h := resp.Header.Clone()
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Etag"} {
		h.Del(k)
	}
	h.Set("Content-Length", strconv.Itoa(len(out)))
	captured := *resp
	captured.Header = h
	captured.Body = io.NopCloser(bytes.NewReader(out))
	captured.ContentLength = int64(len(out))
	captured.TransferEncoding = nil
	captured.Uncompressed = true
	return &captured, nil
}

// captureBody reads, decodes and captures resp's body, and returns the
// body to send with the new secret's name.
func (x *exchange) captureBody(c *rules.Capture, resp *http.Response) ([]byte, string, error) {
	if x.p.store == nil {
		return nil, "", &captureError{captureNoStore}
	}
	body := newIdleBody(resp.Body, x.p.cfg.IdleTimeout, x.conn, false)
	defer body.Close()
	wire := &limitedReader{r: body, left: maxCaptureWire}
	decoded, closeDecoders, err := scrub.Decoded(resp.Header, wire)
	if err != nil {
		return nil, "", &captureError{captureDecode}
	}
	defer closeDecoders()
	doc, err := io.ReadAll(io.LimitReader(decoded, maxCaptureBody+1))
	switch {
	case errors.Is(err, errCaptureWire) || err == nil && len(doc) > maxCaptureBody:
		return nil, "", &captureError{captureTooLarge}
	case err != nil:
		return nil, "", &captureError{captureDecode}
	}
	value, spans, err := findField(doc, c.JSON)
	if err != nil {
		return nil, "", err
	}
	name, err := x.storeCaptured(x.req.Context(), c, secret.FromString(value))
	if err != nil {
		return nil, "", err
	}
	// The policy in force now holds the new secret: the rest of the body,
	// and the rest of the exchange, are scrubbed of it.
	x.pol = x.p.policy.Load()
	return replaceSpans(doc, spans, "<<"+name+">>"), name, nil
}

// storeCaptured stores v as a new secret of the capturing agent under a
// fresh NAME_<id>, and puts it in force. The error holds no value.
func (x *exchange) storeCaptured(ctx context.Context, c *rules.Capture, v secret.Value) (string, error) {
	e := store.Entry{
		Value:  v,
		Origin: store.OriginCaptured,
		Owner:  x.caller.Agent,
		Policy: &store.Policy{Hosts: c.Hosts, Headers: c.Headers, Methods: c.Methods, Paths: c.Paths},
	}
	if c.TTL > 0 {
		e.Expires = time.Now().Add(c.TTL)
	}
	for range 3 {
		e.Name = c.Name + "_" + randomID()
		if _, err := x.p.store.Get(ctx, e.Name); errors.Is(err, store.ErrNotFound) {
			break
		}
		e.Name = ""
	}
	if e.Name == "" {
		return "", &captureError{captureStore}
	}
	if err := x.p.store.Put(ctx, e); err != nil {
		x.p.log.Error("captured value not stored", "request_id", x.rec.RequestID, "secret", e.Name, "error", err)
		return "", &captureError{captureStore}
	}
	if err := x.p.RefreshStored(ctx); err != nil {
		x.p.log.Warn("stored secrets not all read after a capture", "request_id", x.rec.RequestID, "error", err)
	}
	if sec := x.p.policy.Load().set.Secrets[e.Name]; sec == nil || sec.Owner != x.caller.Agent {
		x.p.log.Error("captured value stored but not in force; it stays in the store", "request_id", x.rec.RequestID, "secret", e.Name)
		return "", &captureError{captureStore}
	}
	return e.Name, nil
}

// randomID returns captureIDBytes random bytes in hex.
func randomID() string {
	var b [captureIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// errCaptureWire is a captured body longer than maxCaptureWire on the wire.
var errCaptureWire = errors.New("the captured body is too large")

// limitedReader reads at most left bytes from r, then fails with
// errCaptureWire (io.LimitReader would end cleanly, and a truncated
// document might parse).
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errCaptureWire
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
