package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/inject"
	"keyhole/rules"
)

// APIHost is the name keyhole reserves for its API for agents: a tunnel
// to it (port 443 only) is authenticated like any other and answered by
// keyhole itself, with a leaf of its CA, over HTTP/1.1 or h2. It is never
// resolved or dialed: egress rules, block_private and resolve pins do not
// apply to it, and no placeholder is ever swapped in a request to it.
const APIHost = "keyhole.internal"

// apiPort is the only port of APIHost.
const apiPort = 443

// Bounds of one request to keyhole's API.
const (
	// maxAPIBody bounds a request body handed to the API; a longer one is
	// refused with bad_request.
	maxAPIBody = 64 << 10
	// maxAPIResponse bounds what the API may answer; the answers are
	// small JSON documents.
	maxAPIResponse = 1 << 20
)

// AgentAPI answers the requests agents send to https://keyhole.internal.
type AgentAPI interface {
	// ServeAgent answers r for the authenticated agent id. A non-nil
	// refusal means nothing was written: the proxy renders it as the
	// Part 1 refusal JSON (with the request id) and audits it.
	ServeAgent(w http.ResponseWriter, r *http.Request, id agentauth.Identity) *inject.Refusal
}

// checkAPIConnect decides a CONNECT to APIHost after authentication: only
// port 443, and a minted token's hosts caveat applies to it as to any
// host (fail closed: a token narrowed to other hosts cannot use the API).
func checkAPIConnect(c *caller, port int) *inject.Refusal {
	if port != apiPort {
		return inject.Refuse(inject.NotFound, "", APIHost,
			"keyhole's API is https://%s, on port %d only", APIHost, apiPort)
	}
	if g := c.grant; g != nil && !g.AllowsHost(APIHost, port, apiPort) {
		return inject.Refuse(inject.HostNotAllowed, "", APIHost,
			"the token of agent %s does not allow requests to %s", c.Agent, APIHost)
	}
	return nil
}

// serveAPI answers a request to APIHost: over https only, with a body of
// at most maxAPIBody, by the AgentAPI (404 not_found without one). The
// request never leaves keyhole.
func (x *exchange) serveAPI(t inject.Target) *http.Response {
	if t.Scheme != "https" || t.Port != apiPort {
		return x.refuse(inject.Refuse(inject.PlaintextNotAllowed, "", APIHost,
			"keyhole's API is served over https only: use https://%s%s through the proxy", APIHost, t.Path))
	}
	api := x.p.api
	if api == nil {
		return x.refuse(inject.Refuse(inject.NotFound, "", APIHost, "keyhole's API has no %s", t.Path))
	}
	r, ref := x.apiRequest()
	if ref != nil {
		return x.refuse(ref)
	}
	w := &apiWriter{header: make(http.Header)}
	if ref := api.ServeAgent(w, r, x.caller.identity()); ref != nil {
		return x.refuse(ref)
	}
	if w.overflow {
		x.p.log.Error("keyhole's API answer too large: not sent", "request_id", x.rec.RequestID, "path", t.Path, "limit", maxAPIResponse)
		return x.refuse(inject.Refuse(inject.BadRequest, "", APIHost, "keyhole's answer to %s was too large to send", t.Path))
	}
	resp := w.response(x.req, x.pol)
	x.rec.Status, x.rec.Decision = resp.StatusCode, audit.Allow
	x.rec.BytesOut = resp.ContentLength
	x.finish()
	return resp
}

// apiRequest is the agent's request as the API sees it: its body read
// whole (bounded), without hop-by-hop headers, for https://keyhole.internal.
func (x *exchange) apiRequest() (*http.Request, *inject.Refusal) {
	var body []byte
	if x.req.Body != nil && x.req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(x.req.Body, maxAPIBody+1))
		if err != nil {
			return nil, inject.Refuse(inject.BadRequest, "", APIHost, "the request body could not be read")
		}
		if len(body) > maxAPIBody {
			return nil, inject.Refuse(inject.BadRequest, "", APIHost,
				"a request body to keyhole's API may have at most %d bytes", maxAPIBody)
		}
	}
	r := x.req.Clone(x.req.Context())
	removeHopHeaders(r.Header, false)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.URL.Scheme, r.URL.Host, r.Host = "https", APIHost, APIHost
	r.RequestURI = ""
	return r, nil
}

// identity is who c is, for the API. The anonymous agent (no agents
// section) is an agent named rules.AnonymousAgent with no rule of its own.
func (c *caller) identity() agentauth.Identity {
	a := c.Rule
	if a == nil {
		a = &rules.Agent{Name: rules.AnonymousAgent}
	}
	return agentauth.Identity{Agent: a, Grant: c.grant, TokenID: c.tokenID, TokenIDs: c.tokenIDs, Verified: true}
}

// apiWriter is the ResponseWriter the API writes to: the answer is held
// (bounded) and sent as one response with its length.
type apiWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	overflow bool
}

func (w *apiWriter) Header() http.Header { return w.header }

func (w *apiWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *apiWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(p) > maxAPIResponse {
		w.overflow = true
		return 0, errAPITooLarge
	}
	return w.body.Write(p)
}

// errAPITooLarge is what a Write past maxAPIResponse returns.
var errAPITooLarge = errors.New("keyhole: the API answer is too large")

// response is the answer as an http.Response to req, scrubbed of every
// secret value like an upstream's (the API never writes one; this makes
// sure).
func (w *apiWriter) response(req *http.Request, pol *policy) *http.Response {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	body, _ := pol.scrub.Replace(nil, w.body.Bytes())
	h := w.header.Clone()
	removeHopHeaders(h, false)
	h.Del("Content-Length")
	n := int64(len(body))
	if !bodyAllowed(req.Method, status) {
		body, n = nil, 0
	} else {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: n,
		Request:       req,
	}
}
