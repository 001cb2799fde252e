package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"keyhole/store"
)

// mintedKey is what the test upstream mints; the agent must never see it.
const mintedKey = "rk_live_MINTEDbyUPSTREAM_5551234567"

const captureRules = `
agents:
  alice:
    token: env:CAPTURE_TEST_ALICE
    secrets: []
  bob:
    token: env:CAPTURE_TEST_BOB
    secrets: []
capture:
  - host: api.example.test
    method: POST
    path: /v1/api_keys
    json: secret
    name: STRIPE_KEY
    hosts: [api.example.test]
    headers: [Authorization]
    ttl: 1h
resolve:
  api.example.test: UPSTREAM
  leak.example.test: UPSTREAM
`

// encodeBody compresses b with coding.
func encodeBody(t testing.TB, coding string, b []byte) []byte {
	var out bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&out)
	case "br":
		w = brotli.NewWriter(&out)
	case "zstd":
		zw, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return b
	}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// captureUpstream mints on POST /v1/api_keys: the body is chosen by the
// query (kind=json|html|missing|number|big), encoded as coding=...; any
// other path echoes Authorization, and /leak sends the minted key.
func captureUpstream(t *testing.T) *testUpstream {
	return startTestUpstream(t, []string{"api.example.test", "leak.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/api_keys", "/v1/api_keys/":
			var body []byte
			switch r.URL.Query().Get("kind") {
			case "html":
				body = []byte("<html>" + mintedKey + "</html>")
			case "missing":
				body = []byte(`{"id":"key_1","token":"` + mintedKey + `"}`)
			case "number":
				body = []byte(`{"id":"key_1","secret":5,"also":"` + mintedKey + `"}`)
			case "big":
				body = []byte(`{"secret":"` + mintedKey + `","pad":"` + strings.Repeat("x", 10<<20) + `"}`)
			default:
				body = []byte(`{"id":"key_1","object":"api_key","secret":"` + mintedKey + `","again":"` + mintedKey + `"}`)
			}
			if c := r.URL.Query().Get("coding"); c == "gzip-corrupt" {
				w.Header().Set("Content-Encoding", "gzip")
				body = append([]byte("\x1f\x8b\x08\x00"), body...)
			} else if c != "" && c != "identity" {
				w.Header().Set("Content-Encoding", c)
				body = encodeBody(t, c, body)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Minted", "yes")
			w.Write(body)
		case "/leak":
			w.Write([]byte("value=" + mintedKey))
		default:
			w.Write([]byte("auth=" + r.Header.Get("Authorization")))
		}
	})
}

func startCaptureProxy(t *testing.T, withStore bool) (*testProxy, *testUpstream, store.Store) {
	t.Helper()
	t.Setenv("CAPTURE_TEST_ALICE", "alice-token-0123456789")
	t.Setenv("CAPTURE_TEST_BOB", "bob-token-0123456789ab")
	up := captureUpstream(t)
	var st store.Store
	if withStore {
		f, err := store.Open(t.TempDir(), "")
		if err != nil {
			t.Fatal(err)
		}
		st = f
	}
	tp := startTestProxyWith(t, up, captureRules, Config{}, func(d *Deps) { d.Store = st })
	return tp, up, st
}

var capturedPlaceholder = regexp.MustCompile(`<<STRIPE_KEY_[0-9a-f]{8}>>`)

func post(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{}`))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestCaptureStoresAndHandsOutThePlaceholder(t *testing.T) {
	for _, coding := range []string{"identity", "gzip", "br", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			tp, up, st := startCaptureProxy(t, true)
			alice := tp.as("alice", "alice-token-0123456789")
			// DisableCompression: the raw body the agent gets is checked.
			alice.Transport.(*http.Transport).DisableCompression = true
			resp, body := post(t, alice, "https://api.example.test/v1/api_keys?coding="+coding)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %s", resp.StatusCode, body)
			}
			if strings.Contains(body, mintedKey) {
				t.Fatal("the agent received the minted key")
			}
			ph := capturedPlaceholder.FindString(body)
			if ph == "" || strings.Count(body, ph) != 2 {
				t.Fatalf("got body %s, want the placeholder twice", body)
			}
			var doc map[string]string
			if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["secret"] != ph || doc["id"] != "key_1" {
				t.Fatalf("body %s is not the upstream's JSON with the placeholder: %v", body, err)
			}
			if resp.Header.Get("Content-Encoding") != "" || resp.ContentLength != int64(len(body)) || resp.Header.Get("X-Minted") != "yes" {
				t.Errorf("header %v, length %d for %d bytes", resp.Header, resp.ContentLength, len(body))
			}
			name := strings.Trim(ph, "<>")
			e, err := st.Get(context.Background(), name)
			if err != nil || e.Value.Reveal() != mintedKey || e.Owner != "alice" || e.Origin != store.OriginCaptured ||
				e.Expires.IsZero() || e.Policy == nil || e.Policy.Hosts[0] != "api.example.test" {
				t.Fatalf("store entry %s: err %v, owner %q, origin %q, policy %+v (value right: %v)", name, err, e.Owner, e.Origin, e.Policy, e.Value.Reveal() == mintedKey)
			}
			recs := tp.auditLines(t)
			var rec, event map[string]any
			for _, r := range recs {
				if r["event"] == "capture" {
					event = r
				} else if r["path"] == "/v1/api_keys" {
					rec = r
				}
			}
			if rec == nil || fmt.Sprint(rec["captured"]) != "["+name+"]" || rec["status"] != float64(200) {
				t.Errorf("audit record %v, want captured [%s]", rec, name)
			}
			if event == nil || event["agent"] != "alice" || event["secret"] != name || event["host"] != "api.example.test" {
				t.Errorf("capture event %v", event)
			}
			if strings.Contains(tp.auditBuf.String(), mintedKey) {
				t.Fatal("the audit log holds the minted key")
			}

			// The owner uses it toward the allowed host; the upstream gets
			// the real key; the echo is scrubbed.
			_, echo := get(t, alice, "https://api.example.test/v1/charges", "Authorization", "Bearer "+ph)
			if got := up.last.Load().Header.Get("Authorization"); got != "Bearer "+mintedKey {
				t.Fatal("the upstream did not get the captured key")
			}
			if echo != "auth=Bearer "+ph {
				t.Fatalf("echo %q, want the placeholder back", echo)
			}
			bob := tp.as("bob", "bob-token-0123456789ab")
			if resp, body := get(t, bob, "https://api.example.test/v1/charges", "Authorization", "Bearer "+ph); resp.StatusCode != 403 || !strings.Contains(body, "agent_not_allowed") {
				t.Fatalf("bob: got %d %s, want agent_not_allowed", resp.StatusCode, body)
			}
			if resp, body := get(t, alice, "https://leak.example.test/v1/charges", "Authorization", "Bearer "+ph); resp.StatusCode != 403 || !strings.Contains(body, "host_not_allowed") {
				t.Fatalf("another host: got %d %s, want host_not_allowed", resp.StatusCode, body)
			}
			for who, c := range map[string]*http.Client{"alice": alice, "bob": bob} {
				if _, body := get(t, c, "https://leak.example.test/leak"); body != "value="+ph {
					t.Errorf("%s: a later response holding the key was not scrubbed to its placeholder", who)
				}
			}
		})
	}
}

func TestCaptureFailsClosed(t *testing.T) {
	cases := []struct {
		name, query string
		store       bool
		class       string
	}{
		{"not JSON", "kind=html", true, captureNotJSON},
		{"missing field", "kind=missing&coding=gzip", true, captureNoField},
		{"not a string", "kind=number", true, captureNotString},
		{"10 MiB", "kind=big", true, captureTooLarge},
		{"10 MiB compressed", "kind=big&coding=zstd", true, captureTooLarge},
		{"a corrupt body", "coding=gzip-corrupt", true, captureDecode},
		{"an unknown coding", "coding=compress", true, captureDecode},
		{"no store", "", false, captureNoStore},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, _, _ := startCaptureProxy(t, tc.store)
			alice := tp.as("alice", "alice-token-0123456789")
			resp, body := post(t, alice, "https://api.example.test/v1/api_keys?"+tc.query)
			if resp.StatusCode != 502 || !strings.Contains(body, `"reason":"capture_failed"`) || !strings.Contains(body, tc.class) {
				t.Fatalf("got %d %.300s, want 502 capture_failed (%s)", resp.StatusCode, body, tc.class)
			}
			if strings.Contains(body, mintedKey) || resp.Header.Get("X-Minted") != "" {
				t.Fatal("the agent received some of the upstream's response")
			}
			recs := tp.auditLines(t)
			last := recs[len(recs)-1]
			if last["capture_error"] != tc.class || last["reason"] != "capture_failed" || last["decision"] != "deny" {
				t.Errorf("audit record %v, want capture_error %s", last, tc.class)
			}
			if strings.Contains(tp.auditBuf.String(), mintedKey) {
				t.Fatal("the audit log holds the minted key")
			}
		})
	}
}

// A request the rule could miss by its spelling is captured all the same.
func TestCaptureMatchesFailClosed(t *testing.T) {
	cases := []struct {
		name, method, path string
		header             []string
	}{
		{"trailing slash", "POST", "/v1/api_keys/", nil},
		{"empty segment", "POST", "/v1//api_keys", nil},
		{"method override", "GET", "/v1/api_keys", []string{"X-HTTP-Method-Override", "post"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, _, _ := startCaptureProxy(t, true)
			alice := tp.as("alice", "alice-token-0123456789")
			req, _ := http.NewRequest(tc.method, "https://api.example.test"+tc.path, nil)
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := alice.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), mintedKey) {
				t.Fatal("the minted key reached the agent")
			}
		})
	}
}

func TestCaptureOverH2(t *testing.T) {
	tp, _, _ := startCaptureProxy(t, true)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-token-0123456789"))
	cc := dialH2(t, tp, "api.example.test:443", "Proxy-Authorization", auth)
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.test/v1/api_keys?coding=gzip", strings.NewReader("{}"))
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(b), mintedKey) || !capturedPlaceholder.Match(b) {
		t.Fatalf("got %d, placeholder %v, minted key sent %v", resp.StatusCode, capturedPlaceholder.Match(b), strings.Contains(string(b), mintedKey))
	}
}
