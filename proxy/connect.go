package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/elazarl/goproxy"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
)

// newMITM configures goproxy for intercepted tunnels only: the proxy's own
// CONNECT decision, its own certificates, and its own round trip for every
// inner request.
func (p *Proxy) newMITM() *goproxy.ProxyHttpServer {
	g := p.newGoproxy()
	g.OnRequest().HandleConnectFunc(p.handleConnect)
	return g
}

// newGoproxy returns a goproxy with nothing of its own that would weaken
// the policy.
func (p *Proxy) newGoproxy() *goproxy.ProxyHttpServer {
	g := goproxy.NewProxyHttpServer()
	g.Logger = goproxyLogger{p.log}
	// NewProxyHttpServer reads HTTPS_PROXY for its own dialing and sets a
	// transport that skips verification: replace both, so nothing loops
	// back through keyhole and nothing is sent unverified.
	g.ConnectDial = nil
	g.ConnectDialWithReq = nil
	g.Tr = p.transport
	// prepareHeader removes hop-by-hop and proxy headers (those named by
	// Connection too) and filters Accept-Encoding; goproxy's own removal
	// would also format every request's URL for a debug line.
	g.KeepAcceptEncoding = true
	g.KeepHeader = true
	return g
}

// tunnel is one intercepted tunnel, whose requests each go through
// Proxy.handle (see tunnel.exchange), or get refusal when the CONNECT
// itself was refused for policy.
type tunnel struct {
	p       *Proxy
	caller  *caller
	dest    destination
	conn    *clientConn     // nil when the connection is not tracked
	refusal *inject.Refusal // nil: requests are handled
	tls     bool            // keyhole decrypted the tunnel (see serveTunnel)
}

// headerSlack is what the bound on a request header inside a tunnel allows
// beyond MaxHeaderBytes: it is counted on the TLS records (overhead, a
// record read ahead, the handshake before the first request).
const headerSlack = 64 << 10

// handleConnect decides a CONNECT: authenticate, check the destination,
// and either refuse it with a JSON response before the tunnel opens (a
// failed authentication, a target that is not a host, shutdown), intercept
// it, or open it to answer every request inside with a policy refusal.
func (p *Proxy) handleConnect(hostport string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	now := time.Now()
	pol := p.policy.Load()
	rec := audit.Record{Time: now, RequestID: p.ids.Next(), Agent: rules.AnonymousAgent, Method: http.MethodConnect, Scheme: "https"}
	c, dest, ref := p.decideConnect(r, hostport, pol, now, &rec)
	if ref != nil && c != nil && refusedInsideTunnel(ref.Reason) {
		t := &tunnel{p: p, caller: c, dest: destination{host: rec.Host, port: rec.Port}, refusal: ref}
		return p.intercept(ctx, t, rec), hostport
	}
	if ref != nil {
		p.auditRefusal(&rec, ref)
		ctx.Resp = refusalResponse(r, ref, rec.RequestID)
		ctx.Resp.Close = true
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, hostport
	}
	return p.intercept(ctx, &tunnel{p: p, caller: c, dest: dest}, rec), hostport
}

// intercept opens the tunnel t for the CONNECT in ctx: its bounds, the
// watch on its token, and its hand-over to serveTunnel.
func (p *Proxy) intercept(ctx *goproxy.ProxyCtx, t *tunnel, rec audit.Record) *goproxy.ConnectAction {
	cc := connFrom(ctx.Req.Context())
	if cc != nil {
		cc.bound(p.cfg.HandshakeTimeout, p.cfg.HeaderTimeout)
		cc.limitHeaders(int64(p.cfg.MaxHeaderBytes)+headerSlack, func() {
			p.log.Warn("request header too large inside a tunnel: connection closed",
				"host", t.dest.host, "port", t.dest.port, "max_header_bytes", p.cfg.MaxHeaderBytes)
		})
	}
	t.conn = cc
	p.watchToken(cc, t.caller) // until the tunnel closes
	return p.connectHijack(t, rec)
}

func (p *Proxy) decideConnect(r *http.Request, hostport string, pol *policy, now time.Time, rec *audit.Record) (*caller, destination, *inject.Refusal) {
	if p.draining.Load() {
		return nil, destination{}, inject.Refuse(inject.ShuttingDown, "", "", "keyhole is shutting down; retry shortly")
	}
	host, port, err := splitHostPort(hostport, 443)
	if err != nil {
		return nil, destination{}, inject.Refuse(inject.BadRequest, "", "", "the CONNECT target is not a valid host: %v", err)
	}
	rec.Host, rec.Port = host, port
	c, ref := p.authenticate(r, pol, now)
	c.stamp(rec)
	if ref != nil {
		return nil, destination{}, ref
	}
	if host == APIHost {
		return c, destination{host: host, port: port}, checkAPIConnect(c, port) // never resolved
	}
	t := inject.Target{Scheme: "https", Host: host, Port: port, Method: http.MethodConnect}
	// The policy refusals below come with the caller: the tunnel opens and
	// its requests get the refusal (see refuseInsideTunnel).
	if g := c.grant; g != nil && !g.AllowsHost(host, port, 443) {
		return c, destination{}, inject.Refuse(inject.HostNotAllowed, "", host,
			"the token of agent %s does not allow requests to %s", c.Agent, t.HostPort())
	}
	if ref := checkEgress(pol.set, t); ref != nil {
		return c, destination{}, ref
	}
	if err := p.dialer.checkResolves(r.Context(), host, port); err != nil {
		return c, destination{}, upstreamRefusal(err, host)
	}
	return c, destination{host: host, port: port}, nil
}

// writeAudit writes a record and reports a failure to write it.
func (p *Proxy) writeAudit(rec *audit.Record) {
	if p.observer != nil {
		p.observer.Observe(rec)
	}
	if err := p.audit.Log(rec); err != nil {
		p.log.Error("audit record not written", "request_id", rec.RequestID, "error", err)
	}
}

// goproxyLogger sends goproxy's messages to the operational log at debug
// level: they describe client and upstream connection failures that the
// proxy already reports in its own terms. Only the fixed text of each is
// logged (see fixedFormat): its arguments can quote a request line, which
// can hold an agent's token.
type goproxyLogger struct{ log *slog.Logger }

func (l goproxyLogger) Printf(format string, _ ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fixedFormat(format), "component", "goproxy")
	}
}
