// Package pages serves the pages a human opens from a hand-off link: the
// share page, which reveals a value once, and the intake page, which takes
// a value from the human. It speaks the wire protocol of
// handoff/protocol.go to a [handoff.Pages] service and does the browser's
// half of handoff/crypto.go in JavaScript (WebCrypto):
//
//   - Share: GET /s/ID renders only a "Reveal" button (or the share's end:
//     viewed, expired, revoked, not found) and consumes nothing, so link
//     previews and scanners burn no view. The script takes the key from the
//     fragment, drops the fragment from the address bar, checks the key
//     against the share's KeyCheck from /s/ID/meta (a damaged link claims
//     nothing), and only a click on Reveal POSTs /s/ID/reveal. The value is
//     decrypted in the browser (AES-256-GCM, the id as associated data) and
//     sent nowhere.
//   - Intake: GET /i/ID renders who asks, the secret's name, the hosts (the
//     human may narrow them) and the reason. The script checks the public
//     key from /i/ID/meta against the fingerprint in the fragment before it
//     encrypts anything, seals the value to it (ECDH P-256, HKDF-SHA-256,
//     AES-256-GCM, the id as associated data) and POSTs /i/ID/answer with
//     the link's capability; or POSTs /i/ID/decline.
//
// Every response carries a strict Content-Security-Policy (scripts, styles
// and fetches from the same origin only, no inline script or style, no
// frames, no forms, no base), no referrer, no caching, nosniff and
// X-Frame-Options DENY. HTML, JavaScript and CSS are embedded in the
// binary; nothing is loaded from elsewhere. Ids are checked before any
// lookup, bodies are bounded, and a POST a browser marks as sent by
// another site's page is refused.
//
// [Listen] and [Serve] run the handler on the handoff listener: TLS with a
// leaf of keyhole's CA for the base URL's host, or an operator's
// certificate, with timeouts and bounded headers.
package pages

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"keyhole/handoff"
)

// Bounds of what a client may send.
const (
	// DefaultMaxBody is the largest request body taken by default: an
	// intake answer holds the sealed value in base64url, about 4/3 of
	// the value, plus a few hundred bytes.
	DefaultMaxBody = 256 << 10
	// maxUserAgent bounds the user agent a Viewer carries into the audit.
	maxUserAgent = 256
)

// headers are set on every response, whatever its status. The policy
// allows exactly what the pages use: their own scripts and styles, and
// fetches to their own origin.
var headers = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'",
	"Referrer-Policy":              "no-referrer",
	"Cache-Control":                "no-store",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// hsts is sent over TLS only: a year, this host only (no subdomains, no
// preload list), so a mistyped http:// link cannot be downgraded.
const hsts = "max-age=31536000"

// Options tunes the handler. The zero value works.
type Options struct {
	// Logger receives operational errors of the service (never a value,
	// key, capability or link). Nil discards them.
	Logger *slog.Logger
	// MaxBody bounds request bodies. Zero means DefaultMaxBody.
	MaxBody int64
}

// handler serves the pages; see New.
type handler struct {
	svc     handoff.Pages
	log     *slog.Logger
	maxBody int64
	routes  map[string]route // by prefix + action: "/s/", "/s/meta", ...
}

// route is one page or endpoint of a share or intake: its method and what
// answers it for a valid id.
type route struct {
	method string
	serve  func(w http.ResponseWriter, r *http.Request, id string)
}

// New returns the handler of the handoff listener: the routes of
// handoff/protocol.go, answered from svc.
func New(svc handoff.Pages, opts Options) http.Handler {
	h := &handler{svc: svc, log: opts.Logger, maxBody: opts.MaxBody}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBody
	}
	h.routes = map[string]route{
		handoff.SharePath:              {http.MethodGet, h.sharePage},
		handoff.SharePath + "meta":     {http.MethodGet, h.shareMeta},
		handoff.SharePath + "reveal":   {http.MethodPost, h.reveal},
		handoff.IntakePath:             {http.MethodGet, h.intakePage},
		handoff.IntakePath + "meta":    {http.MethodGet, h.intakeMeta},
		handoff.IntakePath + "answer":  {http.MethodPost, h.answer},
		handoff.IntakePath + "decline": {http.MethodPost, h.decline},
	}
	return h
}

// ServeHTTP sets the security headers and dispatches: PREFIX/ID[/ACTION]
// to its route (another method is a 405; an id that is not canonical is
// a 404 before any lookup), /assets/NAME to the embedded files, anything
// else to a 404.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	for k, v := range headers {
		hd.Set(k, v)
	}
	if r.TLS != nil {
		hd.Set("Strict-Transport-Security", hsts)
	}
	p := r.URL.Path
	if name, ok := strings.CutPrefix(p, handoff.AssetPath); ok {
		if !allowed(w, r, http.MethodGet) {
			return
		}
		serveAsset(w, r, name)
		return
	}
	for _, prefix := range []string{handoff.SharePath, handoff.IntakePath} {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		id, action, _ := strings.Cut(rest, "/")
		rt, ok := h.routes[prefix+action]
		if !ok {
			break
		}
		if !allowed(w, r, rt.method) {
			return
		}
		if !validID(id) {
			break
		}
		if rt.method == http.MethodPost && crossSite(r) {
			writeJSON(w, http.StatusForbidden, errorBody{Status: statusBadRequest, Message: "only this page may send this"})
			return
		}
		rt.serve(w, r, id)
		return
	}
	h.notFound(w, r)
}

// allowed answers 405 unless r's method is method (HEAD goes with GET).
func allowed(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	if method == http.MethodGet {
		method += ", HEAD"
	}
	w.Header().Set("Allow", method)
	writeJSON(w, http.StatusMethodNotAllowed, errorBody{Status: statusBadRequest, Message: "method not allowed"})
	return false
}

// crossSite reports whether a browser says r comes from another site's
// page (Sec-Fetch-Site, or an Origin that is not this host): such a POST
// could burn a view or decline an intake on a visitor's behalf. Clients
// that are not browsers send neither header.
//
// A browser that sends Sec-Fetch-Site is believed alone (a reverse proxy
// may rewrite Host); older ones are judged by Origin.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site != "same-origin" && site != "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, r.Host)
}

// validID reports whether id is a canonical share or intake id, checked
// before any lookup: IDBytes of base64url without padding.
func validID(id string) bool {
	b, err := handoff.Decode(id, handoff.IDBytes)
	return err == nil && handoff.Encode(b) == id
}

// viewer is who sent r, for the audit: the peer's address (no forwarded
// header is trusted) and a bounded user agent.
func viewer(r *http.Request) handoff.Viewer {
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	ua := r.UserAgent()
	if len(ua) > maxUserAgent {
		ua = ua[:maxUserAgent]
	}
	return handoff.Viewer{Addr: addr, UserAgent: ua}
}

func (h *handler) shareMeta(w http.ResponseWriter, r *http.Request, id string) {
	m, err := h.svc.ShareMeta(r.Context(), id)
	if err != nil {
		h.fail(w, r, "share meta", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *handler) reveal(w http.ResponseWriter, r *http.Request, id string) {
	if !h.drain(w, r) {
		return
	}
	resp, err := h.svc.Reveal(r.Context(), id, viewer(r))
	if err != nil {
		h.fail(w, r, "reveal", err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *handler) intakeMeta(w http.ResponseWriter, r *http.Request, id string) {
	m, err := h.svc.IntakeMeta(r.Context(), id)
	if err != nil {
		h.fail(w, r, "intake meta", err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *handler) answer(w http.ResponseWriter, r *http.Request, id string) {
	var a handoff.AnswerRequest
	if !h.decode(w, r, &a) {
		return
	}
	if err := h.svc.Answer(r.Context(), id, a, viewer(r)); err != nil {
		h.fail(w, r, "answer", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) decline(w http.ResponseWriter, r *http.Request, id string) {
	var d handoff.DeclineRequest
	if !h.decode(w, r, &d) {
		return
	}
	if err := h.svc.Decline(r.Context(), id, d, viewer(r)); err != nil {
		h.fail(w, r, "decline", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decode reads r's JSON body into v: bounded, application/json, one
// object, no unknown fields. It answers the client itself when it fails.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// A cross-site form or no-cors fetch cannot send application/json;
	// a client that sends no type at all is taken as sending JSON.
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Status: "bad_request", Message: "the body must be application/json"})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Status: "too_large", Message: "the request is too large"})
			return false
		}
		writeJSON(w, http.StatusBadRequest, errorBody{Status: "bad_request", Message: "the request is not valid JSON"})
		return false
	}
	return true
}

// drain reads and discards a body that must be small (a reveal has none).
func (h *handler) drain(w http.ResponseWriter, r *http.Request) bool {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10)); err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Status: "too_large", Message: "the request is too large"})
		return false
	}
	return true
}

// errorBody is the JSON of every error answer: a 404 or 410 is exactly a
// handoff.GoneResponse; others add a sentence for the human.
type errorBody struct {
	Status  handoff.Status `json:"status"`
	Message string         `json:"message,omitempty"`
}

// Statuses of error answers that are not a record's status.
const (
	statusNotFound      handoff.Status = "not_found"
	statusBadCapability handoff.Status = "bad_capability"
	statusDamaged       handoff.Status = "damaged"
	statusBadRequest    handoff.Status = "bad_request"
	statusError         handoff.Status = "error"
)

// errorStatus maps the service's errors to a status code and body, in
// one place. Internal errors get a fixed sentence.
func errorStatus(err error) (int, errorBody) {
	var gone *handoff.GoneError
	var bad *handoff.BadRequest
	switch {
	case errors.As(err, &gone):
		return http.StatusGone, errorBody{Status: gone.Status}
	case errors.Is(err, handoff.ErrGone):
		return http.StatusGone, errorBody{Status: handoff.StatusExpired}
	case errors.Is(err, handoff.ErrNotFound):
		return http.StatusNotFound, errorBody{Status: statusNotFound}
	case errors.Is(err, handoff.ErrBadCapability):
		return http.StatusForbidden, errorBody{Status: statusBadCapability, Message: "this link is damaged"}
	case errors.Is(err, handoff.ErrDamaged):
		return http.StatusBadRequest, errorBody{Status: statusDamaged, Message: "this link is damaged"}
	case errors.As(err, &bad):
		return http.StatusBadRequest, errorBody{Status: statusBadRequest, Message: bad.Message}
	}
	return http.StatusInternalServerError, errorBody{Status: statusError, Message: "keyhole could not answer; try again later"}
}

// fail answers a service error as JSON, logging the internal ones (the
// error, never the request's body).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, op string, err error) {
	code, body := errorStatus(err)
	if code == http.StatusInternalServerError {
		h.logError(r, op, err)
	}
	writeJSON(w, code, body)
}

// logError logs an internal error of the service: the operation and the
// error, which never holds a value, key or capability.
func (h *handler) logError(r *http.Request, op string, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelError, "handoff page", slog.String("op", op), slog.String("error", err.Error()))
}

func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/meta") || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, errorBody{Status: statusNotFound})
		return
	}
	h.renderEnd(w, r, http.StatusNotFound, statusNotFound)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"status":"error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

var _ http.Handler = (*handler)(nil)
