package pages

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyhole/handoff"
	"keyhole/secret"
)

const shareValue = "sk_live_PAGES_TEST_value_0123456789"

func newTestServer(t *testing.T, f *fake, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(f, opts))
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	code int
	hdr  http.Header
	body string
}

func do(t *testing.T, method, url, ctype, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// TestHeaders: every response, whatever its status or route, carries the
// security headers.
func TestHeaders(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	id, _ := f.share(t, shareValue, 1, time.Hour)
	iid, _ := f.intake(t, "api.sendgrid.com")
	for _, tc := range []struct{ method, path string }{
		{"GET", "/s/" + id}, {"GET", "/s/" + id + "/meta"}, {"POST", "/s/" + id}, {"GET", "/i/" + iid},
		{"POST", "/i/" + iid + "/answer"}, {"GET", "/assets/share.js"}, {"GET", "/assets/nope.js"},
		{"GET", "/"}, {"GET", "/s/short"}, {"HEAD", "/s/" + id}, {"OPTIONS", "/s/" + id},
	} {
		a := do(t, tc.method, srv.URL+tc.path, "", "")
		for k, v := range headers {
			if got := a.hdr.Get(k); got != v {
				t.Errorf("%s %s (%d): %s = %q, want %q", tc.method, tc.path, a.code, k, got, v)
			}
		}
		if a.hdr.Get("Strict-Transport-Security") != "" {
			t.Errorf("%s %s: HSTS over plain HTTP", tc.method, tc.path)
		}
	}
	csp := headers["Content-Security-Policy"]
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP allows %s", bad)
		}
	}
}

// TestRoutes: methods are enforced, ids are validated before any lookup,
// and unknown paths are 404s.
func TestRoutes(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	id, _ := f.share(t, shareValue, 1, time.Hour)
	b, _ := handoff.Decode(id, handoff.IDBytes)
	noncanonical := id[:len(id)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", id[len(id)-1])^1])
	if n, err := handoff.Decode(noncanonical, handoff.IDBytes); err != nil || !bytes.Equal(n, b) {
		t.Fatalf("test setup: %q is not a non-canonical spelling of the id", noncanonical)
	}
	for _, tc := range []struct {
		name, method, path string
		code               int
		allow              string
	}{
		{"reveal by GET", "GET", "/s/" + id + "/reveal", 405, "POST"},
		{"page by POST", "POST", "/s/" + id, 405, "GET, HEAD"},
		{"meta by DELETE", "DELETE", "/s/" + id + "/meta", 405, "GET, HEAD"},
		{"answer by GET", "GET", "/i/" + id + "/answer", 405, "POST"},
		{"decline by PUT", "PUT", "/i/" + id + "/decline", 405, "POST"},
		{"asset by POST", "POST", "/assets/share.js", 405, "GET, HEAD"},
		{"short id", "GET", "/s/abc", 404, ""},
		{"long id", "GET", "/s/" + id + "A", 404, ""},
		{"non-canonical id", "POST", "/s/" + noncanonical + "/reveal", 404, ""},
		{"padded id", "GET", "/s/" + id + "==/meta", 404, ""},
		{"std base64 id", "GET", "/s/" + strings.Repeat("+", 22), 404, ""},
		{"empty id", "GET", "/s/", 404, ""},
		{"unknown action", "GET", "/s/" + id + "/value", 404, ""},
		{"extra segment", "GET", "/s/" + id + "/meta/x", 404, ""},
		{"root", "GET", "/", 404, ""},
		{"asset dir", "GET", "/assets/../pages.go", 404, ""},
		{"asset kind", "GET", "/assets/share.html", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.lookupCount()
			a := do(t, tc.method, srv.URL+tc.path, "", "")
			if a.code != tc.code || a.hdr.Get("Allow") != tc.allow {
				t.Errorf("got %d (Allow %q), want %d (Allow %q)", a.code, a.hdr.Get("Allow"), tc.code, tc.allow)
			}
			if f.lookupCount() != before {
				t.Error("the service was asked")
			}
		})
	}
	if f.claimCount() != 0 {
		t.Error("a view was claimed")
	}
}

// TestSharePage: GET renders only the Reveal button and consumes nothing;
// the end states are rendered from the meta.
func TestSharePage(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	id, key := f.share(t, shareValue, 1, time.Hour)
	for range 3 {
		for _, p := range []string{"/s/" + id, "/s/" + id + "/meta"} {
			if a := do(t, "GET", srv.URL+p, "", ""); a.code != 200 {
				t.Fatalf("GET %s: %d", p, a.code)
			}
		}
		do(t, "HEAD", srv.URL+"/s/"+id, "", "")
	}
	if f.claimCount() != 0 {
		t.Fatalf("loading the page claimed %d views", f.claimCount())
	}
	page := do(t, "GET", srv.URL+"/s/"+id, "", "")
	if !strings.Contains(page.body, `id="reveal"`) || !strings.Contains(page.body, `data-state="ready">`) {
		t.Error("the page has no visible Reveal button")
	}
	if strings.Contains(page.body, "<script>") || strings.Contains(page.body, "style=") {
		t.Error("the page has inline script or style")
	}
	var m handoff.ShareMeta
	if err := json.Unmarshal([]byte(do(t, "GET", srv.URL+"/s/"+id+"/meta", "", "").body), &m); err != nil || m.KeyCheck == "" || m.Status != handoff.StatusReady {
		t.Fatalf("meta: %v %+v", err, m)
	}

	a := do(t, "POST", srv.URL+"/s/"+id+"/reveal", "", "")
	var rr handoff.RevealResponse
	if err := json.Unmarshal([]byte(a.body), &rr); a.code != 200 || err != nil {
		t.Fatalf("reveal: %d %v", a.code, err)
	}
	ct, _ := handoff.Decode(rr.Ciphertext, 0)
	if v, err := handoff.OpenShare(id, key, ct); err != nil || !v.Equal(shareValue) {
		t.Fatalf("the revealed ciphertext does not open to the value: %v", err)
	}
	for _, tc := range []struct {
		path, body string
		code       int
	}{
		{"/s/" + id + "/reveal", `{"status":"viewed"}`, 410},
		{"/s/" + handoff.NewID() + "/reveal", `{"status":"not_found"}`, 404},
	} {
		if a := do(t, "POST", srv.URL+tc.path, "", ""); a.code != tc.code || strings.TrimSpace(a.body) != tc.body {
			t.Errorf("POST %s: got %d %s, want %d %s", tc.path, a.code, a.body, tc.code, tc.body)
		}
	}

	expired, _ := f.share(t, shareValue, 2, time.Hour)
	f.expire(expired)
	for _, tc := range []struct {
		name, path, state string
		code              int
	}{
		{"viewed", "/s/" + id, "viewed", 200},
		{"expired", "/s/" + expired, "expired", 200},
		{"unknown", "/s/" + handoff.NewID(), "not_found", 404},
		{"unknown intake", "/i/" + handoff.NewID(), "not_found", 404},
		{"bad path", "/nothing", "not_found", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, "GET", srv.URL+tc.path, "", "")
			if a.code != tc.code || !strings.Contains(a.body, `<section data-state="`+tc.state+`">`) {
				t.Errorf("got %d, want %d with the %s section shown", a.code, tc.code, tc.state)
			}
			if strings.Count(a.body, "<section") != strings.Count(a.body, " hidden>")+1 {
				t.Error("more than one section shown")
			}
		})
	}
	if strings.Contains(do(t, "GET", srv.URL+"/s/"+expired+"/meta", "", "").body, "key_check") {
		t.Error("an expired share's meta has its key check")
	}
}

// TestIntake: the page shows the request (escaped), the answer sealed by
// the Go twin of the page is taken once, and bad answers are refused.
func TestIntake(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{MaxBody: 4 << 10})
	id, fragment := f.intake(t, "api.sendgrid.com", "<b>evil.example</b>")
	capability, _, _ := strings.Cut(fragment, ".")
	page := do(t, "GET", srv.URL+"/i/"+id, "", "")
	for _, want := range []string{"provisioner", "SENDGRID", "send the weekly report mail", `type="password"`, `maxlength="64"`, "At most 64 bytes", "&lt;b&gt;evil.example&lt;/b&gt;"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the intake page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "<b>evil") {
		t.Error("a host is not escaped")
	}
	in := f.intakeOf(id)
	a, err := handoff.SealAnswer(in.PublicKey, id, secret.FromString(shareValue))
	if err != nil {
		t.Fatal(err)
	}
	a.Capability, a.Hosts = capability, []string{"api.sendgrid.com"}
	good, _ := json.Marshal(a)
	wrongCap := a
	wrongCap.Capability = handoff.Encode(make([]byte, handoff.CapabilityBytes))
	wrong, _ := json.Marshal(wrongCap)
	answerURL := srv.URL + "/i/" + id + "/answer"
	for _, tc := range []struct {
		name, ctype, body string
		code              int
		status            string
	}{
		{"not json", "text/plain", string(good), 415, "bad_request"},
		{"a form", "application/x-www-form-urlencoded", "capability=x", 415, "bad_request"},
		{"bad json", "application/json", "{", 400, "bad_request"},
		{"unknown field", "application/json", `{"capability":"x","value":"plain"}`, 400, "bad_request"},
		{"two objects", "application/json", string(good) + string(good), 400, "bad_request"},
		{"too large", "application/json", `{"capability":"` + strings.Repeat("a", 5<<10) + `"}`, 413, "too_large"},
		{"wrong capability", "application/json", string(wrong), 403, "bad_capability"},
		{"answer", "application/json; charset=utf-8", string(good), 204, ""},
		{"again", "application/json", string(good), 410, "fulfilled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, "POST", answerURL, tc.ctype, tc.body)
			var eb errorBody
			_ = json.Unmarshal([]byte(r.body), &eb)
			if r.code != tc.code || string(eb.Status) != tc.status {
				t.Errorf("got %d %q, want %d %q", r.code, eb.Status, tc.code, tc.status)
			}
		})
	}
	if got := f.intakeOf(id); !got.answered || !got.answer.Equal(shareValue) || len(got.GrantedHosts) != 1 {
		t.Error("the fake did not open the answer to the value with the narrowed hosts")
	}

	did, dfrag := f.intake(t, "api.sendgrid.com")
	dcap, _, _ := strings.Cut(dfrag, ".")
	declineURL := srv.URL + "/i/" + did + "/decline"
	if r := do(t, "POST", declineURL, "application/json", `{"capability":"`+capability+`"}`); r.code != 403 {
		t.Errorf("decline with another link's capability: got %d, want 403", r.code)
	}
	if r := do(t, "POST", declineURL, "application/json", `{"capability":"`+dcap+`"}`); r.code != 204 {
		t.Errorf("decline: got %d, want 204", r.code)
	}
	if r := do(t, "GET", srv.URL+"/i/"+did, "", ""); !strings.Contains(r.body, `<section data-state="declined">`) {
		t.Error("a declined intake's page does not say declined")
	}
	if r := do(t, "GET", srv.URL+"/i/"+id, "", ""); !strings.Contains(r.body, `<section data-state="fulfilled">`) {
		t.Error("an answered intake's page does not say so")
	}
}

// TestInternalError: an internal error gets a fixed sentence; the log gets
// the error.
func TestInternalError(t *testing.T) {
	f := newFake()
	f.fail = errors.New("state: disk on fire")
	var log bytes.Buffer
	srv := newTestServer(t, f, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	id := handoff.NewID()
	for _, p := range []string{"/s/" + id, "/s/" + id + "/meta"} {
		a := do(t, "GET", srv.URL+p, "", "")
		if a.code != 500 || strings.Contains(a.body, "disk on fire") {
			t.Errorf("GET %s: got %d, or the error reached the client", p, a.code)
		}
	}
	if !strings.Contains(log.String(), "disk on fire") {
		t.Error("the error was not logged")
	}
}

// TestAssets: the scripts and the style are served with their types, and
// the scripts spell crypto.go's constants.
func TestAssets(t *testing.T) {
	srv := newTestServer(t, newFake(), Options{})
	for name, want := range map[string]string{"page.js": "text/javascript", "share.js": "text/javascript", "intake.js": "text/javascript", "style.css": "text/css"} {
		a := do(t, "GET", srv.URL+"/assets/"+name, "", "")
		if a.code != 200 || !strings.HasPrefix(a.hdr.Get("Content-Type"), want) || len(a.body) == 0 {
			t.Errorf("%s: got %d %q", name, a.code, a.hdr.Get("Content-Type"))
		}
	}
	for file, want := range map[string]string{"share.js": `"` + handoff.KeyCheckLabel + `"`, "intake.js": `"` + handoff.IntakeInfo + `"`} {
		b, _ := assetFS.ReadFile("assets/" + file)
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s does not spell %s", file, want)
		}
	}
}

// TestCrossSite: a POST that a browser says comes from another site's page
// is refused before the service is asked; same-origin and non-browser
// clients pass.
func TestCrossSite(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, Options{})
	id, _ := f.share(t, shareValue, handoff.MaxViews, time.Hour)
	for _, tc := range []struct {
		name   string
		header map[string]string
		code   int
	}{
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site subdomain", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"other origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}, 200},
		{"not a browser", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.claimCount()
			req, _ := http.NewRequest("POST", srv.URL+"/s/"+id+"/reveal", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			claimed := f.claimCount() - before
			if resp.StatusCode != tc.code || (tc.code == 403) != (claimed == 0) {
				t.Errorf("got %d (claimed %d), want %d", resp.StatusCode, claimed, tc.code)
			}
		})
	}
}
