package pages

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"time"

	"keyhole/handoff"
)

// The pages' files, embedded: templates/ are rendered by the server,
// assets/ are served as they are under /assets/.
var (
	//go:embed templates/*.html
	templateFS embed.FS
	//go:embed assets/*
	assetFS embed.FS

	templates = template.Must(template.New("").Funcs(template.FuncMap{
		"when": func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
	}).ParseFS(templateFS, "templates/*.html"))
)

// assetTypes are the content types of the assets, by extension; an asset
// of another kind is not served.
var assetTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
}

// serveAsset serves an embedded asset by name (no directories).
func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	ct, ok := assetTypes[path.Ext(name)]
	if !ok || !fs.ValidPath(name) || path.Base(name) != name {
		writeJSON(w, http.StatusNotFound, errorBody{Status: statusNotFound})
		return
	}
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		writeJSON(w, http.StatusNotFound, errorBody{Status: statusNotFound})
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// view is what a page template renders. State names the one section the
// page shows; the script shows another when what it learns changes it.
type view struct {
	State  string
	Share  handoff.ShareMeta
	Intake handoff.IntakeMeta
}

// sharePage renders the share page from the share's meta; it consumes
// nothing.
func (h *handler) sharePage(w http.ResponseWriter, r *http.Request, id string) {
	m, err := h.svc.ShareMeta(r.Context(), id)
	if err != nil {
		h.renderError(w, r, "share page", "share.html", err)
		return
	}
	state := string(m.Status)
	switch m.Status {
	case handoff.StatusReady, handoff.StatusViewed, handoff.StatusExpired, handoff.StatusRevoked:
	default:
		state = string(statusError)
	}
	h.render(w, r, http.StatusOK, "share.html", view{State: state, Share: m})
}

// intakePage renders the intake page from the intake's meta.
func (h *handler) intakePage(w http.ResponseWriter, r *http.Request, id string) {
	m, err := h.svc.IntakeMeta(r.Context(), id)
	if err != nil {
		h.renderError(w, r, "intake page", "intake.html", err)
		return
	}
	state := string(m.Status)
	switch m.Status {
	case handoff.StatusPending, handoff.StatusFulfilled, handoff.StatusDeclined, handoff.StatusExpired:
	default:
		state = string(statusError)
	}
	h.render(w, r, http.StatusOK, "intake.html", view{State: state, Intake: m})
}

// renderError renders page in the state err says: not found, gone, or an
// error.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, op, page string, err error) {
	code, body := errorStatus(err)
	if code == http.StatusInternalServerError {
		h.logError(r, op, err)
	}
	h.render(w, r, code, page, view{State: string(body.Status)})
}

// renderEnd renders the page that says state and nothing else.
func (h *handler) renderEnd(w http.ResponseWriter, r *http.Request, code int, state handoff.Status) {
	h.render(w, r, code, "end.html", view{State: string(state)})
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, code int, name string, v view) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, v); err != nil {
		h.logError(r, "render "+name, err)
		http.Error(w, "keyhole could not render this page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}
