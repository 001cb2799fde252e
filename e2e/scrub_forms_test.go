package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// awsValue holds / and +, like many AWS secret keys.
const awsValue = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYTESTSECRETKEY"

func init() {
	allSecretValues = append(allSecretValues, awsValue)
}

// spellings are the ways other implementations write a value, each of
// which a decoder reads back as the value.
var spellings = map[string]func(v string) string{
	"php-json": func(v string) string { return `{"key":"` + strings.ReplaceAll(v, "/", `\/`) + `"}` },
	"json-all-u": func(v string) string {
		var b strings.Builder
		for _, c := range []byte(v) {
			fmt.Fprintf(&b, `\u%04X`, c)
		}
		return `{"key":"` + b.String() + `"}`
	},
	"json-mixed-u": func(v string) string {
		var b strings.Builder
		for i, c := range []byte(v) {
			if i%2 == 0 {
				fmt.Fprintf(&b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
		return `{"key":"` + b.String() + `"}`
	},
	"python-quote": func(v string) string { return "next=/v1/" + strings.ReplaceAll(v, "+", "%2B") },
	"mixed-case-percent": func(v string) string {
		q := url.QueryEscape(v)
		return "k=" + strings.Replace(q, "%2F", "%2f", 1)
	},
	"base64-mime-crlf": func(v string) string {
		return wrap76(base64.StdEncoding.EncodeToString([]byte("-----"+v+" trailing text")), "\r\n")
	},
	"base64-encodebytes-lf": func(v string) string {
		return wrap76(base64.StdEncoding.EncodeToString([]byte("prefix bytes "+v+"\x00\x01")), "\n")
	},
}

// wrap76 cuts s into lines of 76 characters, as MIME and
// base64.encodebytes do.
func wrap76(s, eol string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + eol)
		s = s[76:]
	}
	return b.String() + s + eol
}

func formsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/form/{name}", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f := spellings[r.PathValue("name")]
		if f == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(f(key)))
	})
	mux.Handle("/fold", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		rawReply("HTTP/1.1 200 OK\r\nX-Echo: "+key[:15]+"\r\n "+key[15:]+"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")(w, r)
	}))
	return mux
}

// TestScrubsOtherImplementationsSpellings checks, through the binary, the
// spellings that PHP, Python, MIME and openssl emit, and a folded header.
func TestScrubsOtherImplementationsSpellings(t *testing.T) {
	up := newUpstream(t, []string{"api.aws.test"}, formsHandler())
	plain := newPlainUpstream(t, formsHandler())
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  AWS:
    source: env:AWS_KEY
    hosts: [api.aws.test, plain.test]
    allow_plaintext: true
resolve:
  api.aws.test: %s
  plain.test: %s
`, up.Addr(), plain.Addr()), "AWS_KEY="+awsValue)
	hdr := [][2]string{{"Authorization", "Bearer <<AWS>>"}}
	for _, base := range []string{"https://api.aws.test", "http://plain.test"} {
		for name, f := range spellings {
			t.Run(base+"/"+name, func(t *testing.T) {
				resp := goClient{}.Do(t, k, request{URL: base + "/form/" + name, Header: hdr})
				if resp.Status != 200 {
					t.Fatalf("got %d %s", resp.Status, resp.Err)
				}
				if resp.Body == f(awsValue) {
					t.Fatal("the response reached the agent unscrubbed")
				}
				if !strings.Contains(resp.Body, "<<AWS>>") {
					t.Errorf("got a body without the placeholder")
				}
			})
		}
		t.Run(base+"/obs-fold", func(t *testing.T) {
			resp := goClient{}.Do(t, k, request{URL: base + "/fold", Header: hdr})
			got := resp.Header.Get("X-Echo")
			if strings.Contains(strings.ReplaceAll(got, " ", ""), awsValue) || !strings.Contains(got, "<<AWS>>") {
				t.Errorf("got X-Echo %q, want the folded value scrubbed", strings.ReplaceAll(got, awsValue[15:], "[second half]"))
			}
		})
	}
	t.Run("curl/json-all-u", func(t *testing.T) {
		resp := curlClient{}.Do(t, k, request{URL: "https://api.aws.test/form/json-all-u", Header: hdr})
		if resp.Status != 200 || !strings.Contains(resp.Body, "<<AWS>>") {
			t.Errorf("got %d, a body without the placeholder", resp.Status)
		}
	})
}
