package pages

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyhole/handoff"
)

// FuzzHandler sends arbitrary methods, paths and bodies to the pages:
// nothing panics, every answer carries the security headers, no answer is
// a 5xx (the fake never fails), and nothing but a Reveal by its id claims
// a view.
func FuzzHandler(f *testing.F) {
	svc := newFake()
	id, _ := svc.share(f, shareValue, handoff.MaxViews, time.Hour)
	iid, _ := svc.intake(f, "api.sendgrid.com")
	h := New(svc, Options{MaxBody: 1 << 10})
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/s/" + id, ""}, {"POST", "/s/" + id + "/reveal", ""}, {"GET", "/i/" + iid + "/meta", ""},
		{"POST", "/i/" + iid + "/answer", `{"capability":"x","hosts":["api.sendgrid.com"],"ephemeral_key":"","nonce":"","ciphertext":""}`},
		{"POST", "/i/" + iid + "/decline", `{"capability":""}`}, {"GET", "/assets/page.js", ""}, {"GET", "/assets/%2e%2e/x.js", ""},
		{"GET", "/s/" + id + "/../meta", ""}, {"PATCH", "/i//", "{}"},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !validMethod(method) {
			return
		}
		req, err := http.NewRequest(method, "http://k"+path, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		before := svc.claimCount()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		for k, v := range headers {
			if w.Header().Get(k) != v {
				t.Fatalf("%s %q: %s missing", method, path, k)
			}
		}
		if w.Code >= 500 {
			t.Fatalf("%s %q: %d", method, path, w.Code)
		}
		if svc.claimCount() != before && (method != "POST" || req.URL.Path != "/s/"+id+"/reveal") {
			t.Fatalf("%s %q claimed a view", method, path)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
