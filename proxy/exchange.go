package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
	"keyhole/scrub"
)

// destination is where an intercepted tunnel leads: the CONNECT target,
// against which every inner request's host is checked.
type destination struct {
	host string // canonical
	port int
}

// exchange is one request from an agent, from arrival to the end of its
// response body; it owns the request's audit record.
type exchange struct {
	p      *Proxy
	pol    *policy
	caller *caller
	req    *http.Request
	conn   *clientConn // the tunnel's client connection; nil for plain HTTP
	rec    audit.Record
	done   bool
	scrubs []*scrub.Replacer // for what the credential step sent

	// The injection's result and the request sent upstream, kept here so
	// that an exchange is one allocation rather than four.
	res    inject.Result
	out    http.Request
	outURL url.URL
}

// handle runs one request through authentication, policy, injection, the
// upstream and the scrubber. It always returns a response to send to the
// agent: a refusal is a JSON response, never a dropped connection. For a
// request inside a tunnel, tunnel is the CONNECT target and conn the
// client connection (told before the response body waits on the upstream,
// so that writes it holds back go out first); both are nil for plain-HTTP
// proxy requests.
func (p *Proxy) handle(req *http.Request, c *caller, tunnel *destination, conn *clientConn) *http.Response {
	x := p.newExchange(req, c, conn)
	if req.ProtoMajor == 2 {
		x.rec.Proto = "h2"
	}
	t, ref := x.target(tunnel)
	hop := true // whether req.Header may hold a hop-by-hop header
	if ref == nil && tunnel != nil {
		var ok bool
		if ok, hop = scanHeaderNames(req.Header); !ok {
			ref = malformedHeaderName(t.Host)
		}
	}
	if ref == nil {
		ref = p.recheck(x.pol, c, x.rec.Time)
		c.stamp(&x.rec)
	}
	if ref == nil {
		ref = checkGrant(c, t)
	}
	if ref == nil && t.Host == APIHost {
		return x.serveAPI(t) // never dialed
	}
	if ref == nil {
		ref = checkEgress(x.pol.set, t)
	}
	res := &x.res
	if ref == nil {
		te := req.ProtoMajor == 2 && headerHasToken(req.Header, "Te", "trailers")
		if hop {
			prepareHeader(req.Header)
		} else {
			filterAcceptEncoding(req.Header) // all prepareHeader would do
		}
		*res, ref = inject.Apply(x.pol.set, c.Caller, t, req.Header)
		if te && ref == nil {
			res.Header["Te"] = []string{"trailers"} // gRPC asks for trailers; HTTP/2 allows this one TE
		}
	}
	if ref != nil {
		return x.refuse(ref)
	}
	x.rec.Secrets = res.Secrets
	if len(res.Secrets) > 0 {
		dropRanges(res.Header)
	}
	if resp := x.checkBudgets(t, res.Secrets); resp != nil {
		return resp
	}
	out := x.outgoing(t, res.Header)
	if ref := x.credentials(out, t, res); ref != nil {
		return x.refuse(ref)
	}
	resp, err := p.upstreams.forRequest(c.Agent, len(res.Secrets) > 0).RoundTrip(out)
	if err != nil {
		ref := upstreamRefusal(err, t.Host)
		p.log.Warn("upstream request failed", "request_id", x.rec.RequestID, "host", t.Host,
			"port", t.Port, "reason", string(ref.Reason), "error", describeUpstreamError(err))
		x.rec.Error = string(ref.Reason)
		return x.refuse(ref)
	}
	if c := captureRule(x.pol.set, t, x.req.Header); captures(c, t.Method, resp.StatusCode) {
		if resp, ref = x.capture(c, resp); ref != nil {
			return x.refuse(ref)
		}
	}
	return x.respond(resp, *res)
}

// newExchange starts the exchange of req, counted in flight until its
// audit record is written.
func (p *Proxy) newExchange(req *http.Request, c *caller, conn *clientConn) *exchange {
	p.inflight.Add(1)
	x := &exchange{
		p:      p,
		pol:    p.policy.Load(),
		caller: c,
		req:    req,
		conn:   conn,
		rec: audit.Record{
			Time:      time.Now(),
			RequestID: p.ids.Next(),
			Method:    req.Method,
			Path:      req.URL.Path,
		},
	}
	c.stamp(&x.rec)
	return x
}

// target works out where the request goes, canonically, and refuses a
// request inside a tunnel whose host is not the tunnel's.
func (x *exchange) target(tunnel *destination) (inject.Target, *inject.Refusal) {
	u := x.req.URL
	t := inject.Target{
		Scheme:      strings.ToLower(u.Scheme),
		Method:      x.req.Method,
		Path:        u.Path,
		EscapedPath: u.EscapedPath(),
	}
	if t.Path == "" {
		t.Path, t.EscapedPath = "/", "/"
	}
	x.rec.Scheme = t.Scheme
	if t.Scheme != "http" && t.Scheme != "https" {
		return t, inject.Refuse(inject.BadRequest, "", "", "only http and https URLs can be proxied, not %q", t.Scheme)
	}
	hostport := u.Host
	if hostport == "" {
		hostport = x.req.Host
	}
	host, port, err := splitHostPort(hostport, t.DefaultPort())
	if err != nil {
		x.rec.Host = ""
		return t, inject.Refuse(inject.BadRequest, "", "", "the request's host is not valid: %v", err)
	}
	t.Host, t.Port = host, port
	x.rec.Host, x.rec.Port = host, port
	if tunnel != nil && (host != tunnel.host || port != tunnel.port) {
		return t, inject.Refuse(inject.HostMismatch, "", host,
			"this tunnel was opened to %s, but the request is for %s; open a tunnel to each host you call",
			inject.Target{Scheme: t.Scheme, Host: tunnel.host, Port: tunnel.port}.HostPort(), t.HostPort())
	}
	// A Host header that disagrees with the URL (absolute-form requests)
	// is refused too: the upstream must see the host the rules saw.
	if x.req.Host != "" && x.req.Host != u.Host {
		h, p, err := splitHostPort(x.req.Host, t.DefaultPort())
		if err != nil || h != host || p != port {
			return t, inject.Refuse(inject.HostMismatch, "", host,
				"the Host header does not match the request's URL host %s", t.HostPort())
		}
	}
	return t, nil
}

// splitHostPort parses "host[:port]" into a canonical host and a port.
func splitHostPort(hostport string, defaultPort int) (string, int, error) {
	host, portStr := hostport, ""
	if !strings.Contains(hostport, ":") {
		// A name or IPv4 address alone: no port to split off (and no
		// error for net.SplitHostPort to allocate).
	} else if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, portStr = h, p
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	}
	port := defaultPort
	if portStr != "" {
		var err error
		if port, err = rules.ParsePort(portStr); err != nil {
			return "", 0, err
		}
	}
	canon, err := rules.CanonicalHost(host)
	if err != nil {
		return "", 0, err
	}
	return canon, port, nil
}

// checkHeaderNames refuses a request with a header name that is not an
// RFC 9110 token. net/http's server refuses those itself, but goproxy's
// parser inside tunnels lets through a name with a space before the colon
// ("Transfer-Encoding : chunked"), which the upstream transport would then
// refuse, reported to the agent as upstream_unreachable.
func checkHeaderNames(h http.Header, host string) *inject.Refusal {
	if ok, _ := scanHeaderNames(h); !ok {
		return malformedHeaderName(host)
	}
	return nil
}

// scanHeaderNames reports whether every name in h is a token, as
// checkHeaderNames requires, and whether h has a hop-by-hop header: when
// it has none, not even Connection, prepareHeader has nothing to remove,
// so the exchange need not look at every name again.
func scanHeaderNames(h http.Header) (ok, hop bool) {
	for name := range h {
		if !isToken(name) {
			return false, true
		}
		hop = hop || isHopHeader(name)
	}
	return true, hop
}

func malformedHeaderName(host string) *inject.Refusal {
	return inject.Refuse(inject.BadRequest, "", host, "the request has a malformed header name")
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return s != ""
}

// tokenChars marks the bytes allowed in an RFC 9110 token.
var tokenChars = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()

// checkGrant applies a minted token's host and method narrowing.
func checkGrant(c *caller, t inject.Target) *inject.Refusal {
	g := c.grant
	if g == nil {
		return nil
	}
	if !g.AllowsHost(t.Host, t.Port, t.DefaultPort()) {
		return inject.Refuse(inject.HostNotAllowed, "", t.Host,
			"the token of agent %s does not allow requests to %s", c.Agent, t.HostPort())
	}
	if !g.AllowsMethod(t.Method) {
		return inject.Refuse(inject.MethodNotAllowed, "", t.Host,
			"the token of agent %s does not allow %s requests", c.Agent, t.Method)
	}
	return nil
}

// checkEgress applies the rules' egress section to a destination.
func checkEgress(set *rules.Set, t inject.Target) *inject.Refusal {
	switch set.CheckEgress(t.Host, t.Port, t.DefaultPort()) {
	case rules.EgressDenied:
		return inject.Refuse(inject.EgressDenied, "", t.Host,
			"%s is on the egress deny list", t.HostPort())
	case rules.EgressNotAllowed:
		if ref := portRefusal(set, t); ref != nil {
			return ref
		}
		return inject.Refuse(inject.EgressDenied, "", t.Host,
			"%s is not an allowed destination: no secret or egress.allow entry names it", t.HostPort())
	}
	return nil
}

// removeHopHeaders deletes hop-by-hop headers (RFC 9110 §7.6.1), and those
// named by Connection, from h. It keeps Connection and Upgrade when
// keepUpgrade is set (a WebSocket handshake needs them).
func removeHopHeaders(h http.Header, keepUpgrade bool) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if keepUpgrade && strings.EqualFold(name, "Upgrade") {
				continue
			}
			if name != "" {
				h.Del(name)
			}
		}
	}
	// One pass over h's (usually few) names, rather than a lookup of
	// every hop-by-hop name.
	for name := range h {
		if isHopHeader(name) && !(keepUpgrade && (name == "Connection" || name == "Upgrade")) {
			delete(h, name)
		}
	}
}

// isHopHeader reports whether a canonical header name is hop-by-hop.
func isHopHeader(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isUpgrade reports whether h asks to switch to WebSocket.
func isUpgrade(h http.Header) bool {
	return headerHasToken(h, "Connection", "upgrade") && headerHasToken(h, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// decodable lists the content codings the scrubber can decode.
var decodable = map[string]bool{"gzip": true, "x-gzip": true, "deflate": true, "br": true, "zstd": true, "identity": true}

// filterAcceptEncoding keeps only the codings the scrubber can decode, so
// that an upstream honouring the header never sends one it cannot read. A
// header that offers only decodable codings (the usual case) is left as it
// is, without allocating.
func filterAcceptEncoding(h http.Header) {
	vs := h["Accept-Encoding"]
	if len(vs) == 0 || (len(vs) == 1 && allDecodable(vs[0])) {
		return
	}
	var keep []string
	for _, v := range vs {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); decodable[codingOf(part)] {
				keep = append(keep, part)
			}
		}
	}
	if len(keep) == 0 {
		h.Del("Accept-Encoding")
		return
	}
	h["Accept-Encoding"] = []string{strings.Join(keep, ", ")}
}

// codingOf returns the lower-case coding of an Accept-Encoding element
// ("gzip;q=0.8" → "gzip").
func codingOf(part string) string {
	coding, _, _ := strings.Cut(part, ";")
	coding = strings.TrimSpace(coding)
	if decodable[coding] {
		return coding
	}
	return strings.ToLower(coding)
}

func allDecodable(v string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if !decodable[codingOf(strings.TrimSpace(part))] {
			return false
		}
	}
	return true
}

// prepareHeader removes from the agent's header, in place and before any
// placeholder is looked for, what must not travel upstream: hop-by-hop
// headers (Proxy-Authorization among them), WebSocket extensions (compressed
// frames could not be scrubbed) and codings the scrubber cannot decode. It
// is idempotent.
func prepareHeader(h http.Header) {
	upgrade := isUpgrade(h)
	removeHopHeaders(h, upgrade)
	if upgrade {
		scrub.StripWebSocketExtensions(h)
	}
	filterAcceptEncoding(h)
}

// outgoing builds the request sent upstream: the agent's request with the
// injected header h, the canonical host, and no "Connection: close", so the
// upstream connection is reused whatever the agent does with its own. It is
// a shallow copy of the agent's request in the exchange (as WithContext
// with the same context makes one), and is made once per exchange.
func (x *exchange) outgoing(t inject.Target, h http.Header) *http.Request {
	out := &x.out
	*out = *x.req
	out.Header = h
	u := &x.outURL
	*u = *x.req.URL
	u.Scheme = t.Scheme
	u.Host = t.HostPort()
	u.User = nil
	out.URL = u
	out.Host = ""
	out.Close = false
	out.RequestURI = ""
	if out.Body != nil && out.Body != http.NoBody {
		out.Body = agentBody{out.Body}
	}
	return out
}
