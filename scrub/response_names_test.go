package scrub

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"keyhole/secret"
)

// TestResponseStatusLine checks that the upstream's reason phrase, which
// may echo a secret, never reaches the agent: the status line carries the
// standard text of the code.
func TestResponseStatusLine(t *testing.T) {
	tests := []struct {
		status string
		code   int
		want   string
	}{
		{"401 " + testKey, 401, "HTTP/1.1 401 Unauthorized\r\n"},
		{"200 totally fine", 200, "HTTP/1.1 200 OK\r\n"},
		{"599 " + testKey, 599, "HTTP/1.1 599 status code 599\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			for _, r := range []*Replacer{testReplacer(), Compile(nil)} {
				resp := newResponse(tc.code, http.Header{}, []byte("x"))
				resp.Status, resp.ProtoMajor, resp.ProtoMinor = tc.status, 1, 1
				if _, err := r.Response(resp, http.MethodGet); err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := resp.Write(&out); err != nil {
					t.Fatal(err)
				}
				line, _, _ := strings.Cut(out.String(), "\n")
				if line+"\n" != tc.want {
					t.Errorf("got status line %s, want %q", redact(line, testKey), tc.want)
				}
			}
		})
	}
}

// trailerSetter is an upstream body that fills in the trailer at its end,
// as net/http's transport does.
type trailerSetter struct {
	r       io.Reader
	trailer http.Header
	set     http.Header
}

func (s *trailerSetter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		for k, v := range s.set {
			s.trailer[k] = v
		}
	}
	return n, err
}

func (s *trailerSetter) Close() error { return nil }

// TestResponseHeaderNames checks that a secret in a header or trailer
// name, where net/http has changed its case, removes that field, and that
// the Trailer header announced to the agent is rebuilt without it.
func TestResponseHeaderNames(t *testing.T) {
	leak := http.CanonicalHeaderKey("X-Leak-" + testKey)
	tleak := http.CanonicalHeaderKey("X-T-" + testKey)
	if strings.Contains(leak, testKey) {
		t.Fatal("the test wants a name whose case net/http changes")
	}
	for _, streamed := range []bool{false, true} {
		name := "small body"
		if streamed {
			name = "streamed body"
		}
		t.Run(name, func(t *testing.T) {
			body := []byte("hello")
			trailer := http.Header{tleak: nil, "X-Ok": nil}
			resp := &http.Response{
				StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header:        http.Header{leak: {"1"}, "X-Fine": {"2"}},
				Trailer:       trailer,
				ContentLength: int64(len(body)),
				Body: &trailerSetter{r: bytes.NewReader(body), trailer: trailer,
					set: http.Header{tleak: {"1"}, "X-Ok": {testKey}}},
			}
			if streamed {
				resp.ContentLength, resp.TransferEncoding = -1, []string{"chunked"}
			}
			b, err := testReplacer().Response(resp, http.MethodGet)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := resp.Write(&out); err != nil {
				t.Fatal(err)
			}
			wire := out.String()
			if strings.Contains(strings.ToLower(wire), strings.ToLower(testKey)) {
				t.Errorf("the response written to the agent holds the secret (in any case): %s", redact(wire, testKey))
			}
			if resp.Header.Get("X-Fine") != "2" || resp.Trailer.Get("X-Ok") != "<<STRIPE>>" {
				t.Errorf("got X-Fine %q, trailer X-Ok %s, want the other fields kept and scrubbed",
					resp.Header.Get("X-Fine"), redact(resp.Trailer.Get("X-Ok"), testKey))
			}
			if streamed && !strings.Contains(wire, "Trailer: X-Ok\r\n") {
				t.Errorf("got %s, want the Trailer header to announce X-Ok only", redact(wire, testKey))
			}
			if n := b.Scrubbed(); n != 3 {
				t.Errorf("got %d replacements, want 3 (two names, one value)", n)
			}
		})
	}
}

// TestResponseHeaderNameForms checks names that hold an encoded form of
// the secret, and that names without one are left alone.
func TestResponseHeaderNameForms(t *testing.T) {
	r := Compile([]Secret{{Name: "AWS", Value: secret.FromString("AKIA/TEST+key0123")}})
	tests := []struct {
		name string
		gone bool
	}{
		{"X-" + strings.ToUpper("akia/test+key0123"), true},
		{"X-Akia%2ftest%2bkey0123", true},
		{"X-Akia", false},
		{"Content-Type", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{tc.name: {"v"}}
			r.scrubHeader(h, nil)
			if _, ok := h[tc.name]; ok == tc.gone {
				t.Errorf("got kept %v, want kept %v", ok, !tc.gone)
			}
		})
	}
}
