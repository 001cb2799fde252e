package scrub

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"keyhole/secret"
)

const testKey = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"

func testReplacer() *Replacer {
	return Compile([]Secret{{Name: "STRIPE", Value: secret.FromString(testKey)}})
}

// encode applies the codings of a Content-Encoding value, in order.
func encode(t *testing.T, codings string, body []byte) []byte {
	t.Helper()
	for c := range strings.SplitSeq(codings, ",") {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch strings.ToLower(strings.TrimSpace(c)) {
		case "gzip", "x-gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w, _ = zlib.NewWriterLevel(&buf, zlib.BestSpeed)
		case "raw-deflate":
			w, _ = flate.NewWriter(&buf, flate.BestSpeed)
		case "br":
			w = brotli.NewWriter(&buf)
		case "zstd":
			zw, err := zstd.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w = zw
		case "identity", "":
			continue
		default:
			t.Fatalf("no encoder for %q", c)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		body = buf.Bytes()
	}
	return body
}

func newResponse(status int, header http.Header, body []byte) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	resp := &http.Response{StatusCode: status, Header: header, ContentLength: -1, Body: io.NopCloser(bytes.NewReader(body))}
	if cl := header.Get("Content-Length"); cl != "" {
		resp.ContentLength, _ = strconv.ParseInt(cl, 10, 64)
	}
	return resp
}

func TestResponseEncodings(t *testing.T) {
	plain := []byte(`{"key":"` + testKey + `","n":1}` + "\n")
	large := bytes.Repeat(plain, 3000) // over 64 KiB
	scrubbedPlain := strings.ReplaceAll(string(plain), testKey, "<<STRIPE>>")
	scrubbedLarge := strings.ReplaceAll(string(large), testKey, "<<STRIPE>>")
	tests := []struct {
		name       string
		header     string // Content-Encoding sent
		encodeAs   string // codings actually applied
		body       []byte
		setLength  bool
		want       string
		wantCount  int
		wantLength int64 // resp.ContentLength after Response
	}{
		{"identity small with length", "", "", plain, true, scrubbedPlain, 1, int64(len(scrubbedPlain))},
		{"identity coding named", "identity", "", plain, true, scrubbedPlain, 1, int64(len(scrubbedPlain))},
		{"identity small unknown length", "", "", plain, false, scrubbedPlain, 1, -1},
		{"identity large with length", "", "", large, true, scrubbedLarge, 3000, -1},
		{"empty with length", "", "", nil, true, "", 0, 0},
		{"gzip", "gzip", "gzip", plain, true, scrubbedPlain, 1, -1},
		{"x-gzip upper case", "X-GZIP", "gzip", large, true, scrubbedLarge, 3000, -1},
		{"deflate zlib", "deflate", "deflate", plain, true, scrubbedPlain, 1, -1},
		{"deflate raw", "deflate", "raw-deflate", large, false, scrubbedLarge, 3000, -1},
		{"br", "br", "br", large, false, scrubbedLarge, 3000, -1},
		{"zstd", "zstd", "zstd", large, true, scrubbedLarge, 3000, -1},
		{"stacked", "gzip, br", "gzip,br", large, false, scrubbedLarge, 3000, -1},
		{"stacked with identity", "zstd,identity, deflate", "zstd,deflate", plain, false, scrubbedPlain, 1, -1},
		{"empty gzip body", "gzip", "", nil, true, "", 0, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := encode(t, tc.encodeAs, tc.body)
			h := http.Header{}
			if tc.header != "" {
				h.Set("Content-Encoding", tc.header)
			}
			if tc.setLength {
				h.Set("Content-Length", strconv.Itoa(len(wire)))
			}
			resp := newResponse(200, h, wire)
			b, err := testReplacer().Response(resp, http.MethodGet)
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if resp.Body != io.ReadCloser(b) {
				t.Errorf("resp.Body is not the returned Body")
			}
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read: got %v, want nil", err)
			}
			if string(got) != tc.want {
				t.Errorf("body: %s", describeDiff(got, []byte(tc.want)))
			}
			if b.Scrubbed() != tc.wantCount {
				t.Errorf("Scrubbed: got %d, want %d", b.Scrubbed(), tc.wantCount)
			}
			if resp.ContentLength != tc.wantLength {
				t.Errorf("ContentLength: got %d, want %d", resp.ContentLength, tc.wantLength)
			}
			wantHeader := ""
			if tc.wantLength >= 0 {
				wantHeader = strconv.FormatInt(tc.wantLength, 10)
			}
			if got := resp.Header.Get("Content-Length"); got != wantHeader {
				t.Errorf("Content-Length header: got %q, want %q", got, wantHeader)
			}
			if got := resp.Header.Get("Content-Encoding"); tc.encodeAs != "" && got != "" {
				t.Errorf("Content-Encoding: got %q, want it removed", got)
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: got %v, want nil", err)
			}
		})
	}
}

func TestResponseUnknownEncoding(t *testing.T) {
	// Refused whether or not the request carried a secret: a value the
	// upstream stored earlier can come back in a body keyhole cannot read.
	body := []byte("compressed " + testKey)
	h := http.Header{"Content-Encoding": {"compress"}, "Content-Length": {strconv.Itoa(len(body))}, "X-Echo": {testKey}}
	resp := newResponse(200, h, body)
	orig := resp.Body
	b, err := testReplacer().Response(resp, http.MethodGet)
	if !errors.Is(err, ErrUnscrubbableEncoding) || b != nil || resp.Body != orig {
		t.Fatalf("got %v, body replaced %v, want ErrUnscrubbableEncoding and the body untouched", err, resp.Body != orig)
	}
	if strings.Contains(err.Error(), "compress") {
		t.Errorf("error %q names the upstream's coding, want a fixed text", err)
	}
	t.Run("too many codings", func(t *testing.T) {
		resp := newResponse(200, http.Header{"Content-Encoding": {"gzip, gzip, gzip, gzip, gzip"}}, nil)
		if _, err := testReplacer().Response(resp, http.MethodGet); !errors.Is(err, ErrUnscrubbableEncoding) {
			t.Errorf("got %v, want ErrUnscrubbableEncoding", err)
		}
	})
}

func TestResponseNoPatternsPassesThrough(t *testing.T) {
	wire := encode(t, "gzip", []byte("hello"))
	h := http.Header{"Content-Encoding": {"gzip"}, "Content-Length": {strconv.Itoa(len(wire))}}
	resp := newResponse(200, h, wire)
	if _, err := Compile(nil).Response(resp, http.MethodGet); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, wire) || h.Get("Content-Encoding") != "gzip" || resp.ContentLength != int64(len(wire)) {
		t.Errorf("got a changed response, want it as sent")
	}
}

func TestResponseBodiless(t *testing.T) {
	tests := []struct {
		name   string
		method string
		status int
	}{
		{"head", http.MethodHead, 200},
		{"no content", http.MethodGet, 204},
		{"not modified", http.MethodGet, 304},
		{"early hints", http.MethodGet, 103},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Content-Length": {"1234"}, "Content-Encoding": {"weird"}, "Etag": {testKey}}
			resp := newResponse(tc.status, h, nil)
			resp.ContentLength = 1234
			b, err := testReplacer().Response(resp, tc.method)
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if resp.ContentLength != 1234 || h.Get("Content-Length") != "1234" {
				t.Errorf("got length %d, header %q, want 1234 kept", resp.ContentLength, h.Get("Content-Length"))
			}
			if h.Get("Etag") != "<<STRIPE>>" || b.Scrubbed() != 1 {
				t.Errorf("got Etag %s, Scrubbed %d, want it scrubbed once", redact(h.Get("Etag"), testKey), b.Scrubbed())
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	h := http.Header{
		"Location":   {"https://example.com/cb?key=" + testKey},
		"Set-Cookie": {"a=1", "session=" + testKey + "; Path=/; HttpOnly"},
		"X-Json":     {`{"k":"` + testKey + `"}`},
		"X-Other":    {"nothing"},
	}
	resp := newResponse(200, h, nil)
	resp.Trailer = http.Header{"X-Checksum": {testKey}}
	b, err := testReplacer().Response(resp, http.MethodGet)
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	want := http.Header{
		"Location":   {"https://example.com/cb?key=<<STRIPE>>"},
		"Set-Cookie": {"a=1", "session=<<STRIPE>>; Path=/; HttpOnly"},
		"X-Json":     {`{"k":"<<STRIPE>>"}`},
		"X-Other":    {"nothing"},
	}
	for k, v := range want {
		if got := h[k]; strings.Join(got, "|") != strings.Join(v, "|") {
			t.Errorf("%s: got %s, want %q", k, redact(strings.Join(got, "|"), testKey), v)
		}
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "<<STRIPE>>" {
		t.Errorf("trailer: got %s, want %q", redact(got, testKey), "<<STRIPE>>")
	}
	if b.Scrubbed() != 4 {
		t.Errorf("Scrubbed: got %d, want 4", b.Scrubbed())
	}
}

// A small body is read into a pooled buffer: once its Body is closed, the
// buffer serves the next response, and the closed Body must not show that
// response's bytes.
func TestSmallBodyBufferReuse(t *testing.T) {
	rep := testReplacer()
	for _, tc := range []struct {
		name  string
		first string
	}{
		{"no secret", "first body, nothing to scrub"},
		{"secret", "first body with " + testKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			respond := func(body string) (*Body, *http.Response) {
				h := http.Header{"Content-Length": {strconv.Itoa(len(body))}}
				resp := newResponse(http.StatusOK, h, []byte(body))
				b, err := rep.Response(resp, http.MethodGet)
				if err != nil {
					t.Fatal(err)
				}
				return b, resp
			}
			first, _ := respond(tc.first)
			head := make([]byte, 6)
			if _, err := io.ReadFull(first, head); err != nil || string(head) != "first " {
				t.Fatalf("first body starts %q, %v", head, err)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			second, resp := respond("SECOND BODY, written over the first one's buffer")
			got, err := io.ReadAll(second)
			if err != nil || string(got) != "SECOND BODY, written over the first one's buffer" ||
				resp.ContentLength != int64(len(got)) {
				t.Fatalf("second body %q (Content-Length %d), %v", got, resp.ContentLength, err)
			}
			rest, err := io.ReadAll(first)
			if err == nil || len(rest) != 0 {
				t.Fatalf("closed body read %q, %v; want no bytes and an error", rest, err)
			}
			second.Close()
		})
	}
}

// A small body read whole leaves with one canonical Content-Length that
// matches what the agent receives.
func TestSmallBodyContentLength(t *testing.T) {
	rep := testReplacer()
	for _, tc := range []struct {
		name, body, header, want string
	}{
		{"unchanged", "hello", "5", "5"},
		{"leading zero", "hello", "005", "5"},
		{"secret replaced", "key " + testKey, strconv.Itoa(4 + len(testKey)), strconv.Itoa(len("key <<STRIPE>>"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := newResponse(http.StatusOK, http.Header{"Content-Length": {tc.header}}, []byte(tc.body))
			resp.ContentLength = int64(len(tc.body))
			b, err := rep.Response(resp, http.MethodGet)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got, err := io.ReadAll(b)
			if err != nil {
				t.Fatal(err)
			}
			if cl := resp.Header["Content-Length"]; len(cl) != 1 || cl[0] != tc.want ||
				resp.ContentLength != int64(len(got)) || strconv.Itoa(len(got)) != tc.want {
				t.Errorf("Content-Length %q (field %d) for a body of %d bytes; want %q", cl, resp.ContentLength, len(got), tc.want)
			}
		})
	}
}
