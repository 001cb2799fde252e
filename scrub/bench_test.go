package scrub

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/klauspost/compress/gzip"
)

const benchSize = 1 << 20

// BenchmarkReplacer measures one-shot Replace on a 1 MiB JSON-lines body
// with a few matches, for 1, 10 and 100 realistic secrets.
func BenchmarkReplacer(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		body, secrets := benchBody(benchSize, n, 8)
		r := Compile(secrets)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			dst := make([]byte, 0, 2*len(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = r.Replace(dst[:0], body)
			}
			b.ReportMetric(float64(r.Len()), "patterns")
		})
	}
}

// BenchmarkReader streams the same body through a Reader with 32 KiB
// reads, as io.Copy does.
func BenchmarkReader(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		body, secrets := benchBody(benchSize, n, 8)
		r := Compile(secrets)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			benchCopy(b, body, func(src io.Reader) io.Reader { return r.NewReader(src) })
		})
	}
	body, secrets := benchBody(benchSize, 10, 8)
	// The per-request swap of a Basic credential, as the proxy makes it.
	sent := base64.StdEncoding.EncodeToString([]byte("api:" + secrets[0].Value.Reveal()))
	agent := base64.StdEncoding.EncodeToString([]byte("api:<<" + secrets[0].Name + ">>"))
	chain := Chain(Compile(secrets), NewPairs([]Pair{{Find: sent, Replace: agent}}))
	b.Run("secrets=10+pair", func(b *testing.B) {
		benchCopy(b, body, func(src io.Reader) io.Reader { return chain.NewReader(src) })
	})
}

// BenchmarkReaderNoPatterns measures the passthrough of a Replacer with
// nothing to replace.
func BenchmarkReaderNoPatterns(b *testing.B) {
	body, _ := benchBody(benchSize, 0, 0)
	r := Compile(nil)
	benchCopy(b, body, func(src io.Reader) io.Reader { return r.NewReader(src) })
}

// BenchmarkCopy is the baseline: io.Copy of the same bytes, unscrubbed.
func BenchmarkCopy(b *testing.B) {
	body, _ := benchBody(benchSize, 0, 0)
	benchCopy(b, body, func(src io.Reader) io.Reader { return src })
}

// benchCopy copies body through wrap with 32 KiB reads.
func benchCopy(b *testing.B, body []byte, wrap func(io.Reader) io.Reader) {
	buf := make([]byte, 32<<10)
	src := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		if _, err := io.CopyBuffer(io.Discard, onlyReader{wrap(src)}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// onlyReader hides WriteTo so that io.CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// BenchmarkResponse scrubs a gzip-compressed 1 MiB response with ten
// secrets, decompression included.
func BenchmarkResponse(b *testing.B) {
	body, secrets := benchBody(benchSize, 10, 8)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()
	r := Compile(secrets)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp := &http.Response{
			StatusCode:    200,
			Header:        http.Header{"Content-Encoding": {"gzip"}, "Content-Length": {strconv.Itoa(gz.Len())}},
			ContentLength: int64(gz.Len()),
			Body:          io.NopCloser(bytes.NewReader(gz.Bytes())),
		}
		scrubResponse(b, r, resp, buf)
	}
	b.ReportMetric(float64(gz.Len()), "gzip-bytes")
}

// BenchmarkGunzip is the baseline of BenchmarkResponse: decompressing the
// same body without scrubbing it.
func BenchmarkGunzip(b *testing.B) {
	body, _ := benchBody(benchSize, 10, 8)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(body)
	_ = zw.Close()
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		zr, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, onlyReader{zr}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallResponse is the scrubbing of one keep-alive API response:
// a 1 KiB body of known length, read whole, one secret, no match.
func BenchmarkSmallResponse(b *testing.B) {
	body, secrets := benchBody(1<<10, 1, 0)
	r := Compile(secrets)
	buf := make([]byte, 32<<10)
	cl := strconv.Itoa(len(body))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		resp := &http.Response{
			StatusCode:    200,
			Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {cl}},
			ContentLength: int64(len(body)),
			Body:          io.NopCloser(bytes.NewReader(body)),
		}
		scrubResponse(b, r, resp, buf)
	}
	b.ReportMetric(float64(r.Len()), "patterns")
}

// scrubResponse scrubs resp and reads its body through buf, as the proxy
// relays one.
func scrubResponse(b *testing.B, r *Replacer, resp *http.Response, buf []byte) {
	sb, err := r.Response(resp, http.MethodGet)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyBuffer(io.Discard, onlyReader{resp.Body}, buf); err != nil {
		b.Fatal(err)
	}
	_ = sb.Close()
}
