package proxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"keyhole/audit"
	"keyhole/inject"
)

// servePlain proxies an absolute-form http:// (or https://) request. It
// shares Proxy.handle with tunnels, and streams the response itself:
// goproxy's plain-HTTP handler would hold a chunked response back until it
// ended.
func (p *Proxy) servePlain(w http.ResponseWriter, r *http.Request) {
	if !r.URL.IsAbs() {
		p.refuseDirect(w, r, inject.Refuse(inject.BadRequest, "", "",
			"keyhole is a proxy, not a web server: set HTTPS_PROXY and HTTP_PROXY to http://%s and request the real URL", r.Host), nil)
		return
	}
	if p.draining.Load() {
		w.Header().Set("Connection", "close")
	}
	c, ref := p.authenticate(r, p.policy.Load(), time.Now())
	if ref != nil {
		p.refuseDirect(w, r, ref, c)
		return
	}
	resp := p.handle(r, c, nil, nil)
	defer p.watchToken(connFrom(r.Context()), c)() // a stream or upgrade ends with its token
	p.writeResponse(w, r, resp)
}

// refuseDirect writes a refusal decided before Proxy.handle ran, with its
// audit record, which names whom c claimed to be (c may be nil).
func (p *Proxy) refuseDirect(w http.ResponseWriter, r *http.Request, ref *inject.Refusal, c *caller) {
	rec := audit.Record{
		Time: time.Now(), RequestID: p.ids.Next(), Method: r.Method,
		Scheme: r.URL.Scheme, Path: r.URL.Path, Secrets: inject.Named(p.policy.Load().set, r.Header),
	}
	c.stamp(&rec)
	if h, port, err := splitHostPort(r.URL.Host, 80); err == nil {
		rec.Host, rec.Port = h, port
	}
	p.auditRefusal(&rec, ref)
	p.writeResponse(w, r, refusalResponse(r, ref, rec.RequestID))
}

// writeResponse copies resp to w, flushing as bytes arrive when the body's
// length is unknown (streams), and aborting the client connection, rather
// than ending the response cleanly, when the upstream body breaks.
func (p *Proxy) writeResponse(w http.ResponseWriter, r *http.Request, resp *http.Response) {
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		p.upgrade(w, resp)
		return
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	removeHopHeaders(h, false)
	if resp.StatusCode == http.StatusProxyAuthRequired && isRefusal(resp) {
		// Hop-by-hop, but this hop's own: the client must learn the scheme.
		h["Proxy-Authenticate"] = resp.Header["Proxy-Authenticate"]
	}
	if resp.ContentLength >= 0 && resp.Header.Get("Content-Length") == "" && bodyAllowed(r.Method, resp.StatusCode) {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	if resp.Close {
		h.Set("Connection", "close")
	}
	w.WriteHeader(resp.StatusCode)
	if !bodyAllowed(r.Method, resp.StatusCode) {
		return
	}
	if err := relayBody(w, resp); err != nil && !errors.Is(err, errAgentWrite) {
		// A truncated body must not look complete to the agent.
		panic(http.ErrAbortHandler)
	}
}

// errAgentWrite is relayBody's error when the agent can no longer be
// written to.
var errAgentWrite = errors.New("writing the response to the agent failed")

// relayBuffers holds relayBody's buffers: each h2 stream allocating 32 KiB
// for its response was a tenth of an h2 tunnel's CPU (the allocation,
// clearing it, the collections it brought on). A ResponseWriter has
// copied what it was given by the time Write returns.
var relayBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayBody copies resp's body to w, flushing after each read when its
// length is unknown (a stream). It returns nil at the end of the body,
// errAgentWrite when a write fails, or the body's read error.
func relayBody(w http.ResponseWriter, resp *http.Response) error {
	rc := http.NewResponseController(w)
	stream := resp.ContentLength < 0
	bp := relayBuffers.Get().(*[]byte)
	defer relayBuffers.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return errAgentWrite
			}
			if stream {
				_ = rc.Flush()
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// bodyAllowed reports whether a response to method with status has a body.
func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// upgrade completes a WebSocket handshake on a plain-HTTP connection: it
// takes the connection over, writes the 101 response and relays both
// directions until either side closes. resp.Body is the upstream connection
// (already wrapped by the scrubber).
func (p *Proxy) upgrade(w http.ResponseWriter, resp *http.Response) {
	upstream, ok := resp.Body.(io.ReadWriter)
	if !ok {
		http.Error(w, "keyhole: upstream upgrade failed", http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	resp.Body = nil
	bw := bufio.NewWriter(conn)
	if err := resp.Write(bw); err != nil || bw.Flush() != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		// brw.Reader holds bytes the client sent with the upgrade
		// request, then reads on from conn.
		_, _ = io.Copy(upstream, brw.Reader)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(conn, upstream)
		done <- struct{}{}
	}()
	<-done
}
