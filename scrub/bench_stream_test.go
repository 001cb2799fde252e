package scrub

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"keyhole/cputime"
)

// BenchmarkStreamRecords is BenchmarkStream with the read sizes of the
// proxy's response path: the upstream body is a TLS connection, whose Read
// returns at most one record (16 KiB of data), and the response is copied
// to the agent by io.Copy with its 32 KiB buffer.
func BenchmarkStreamRecords(b *testing.B) {
	for _, n := range []int{10, 100} {
		body, secrets := benchBody(benchSize, n, 8)
		r := Compile(secrets)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			benchReader(b, r, body, true)
		})
	}
}

// benchReader scrubs body through a Reader as the proxy does, copied out
// with 32 KiB reads and closed so that its buffers are reused; records
// feeds it a TLS record (16 KiB) at a time.
func benchReader(b *testing.B, r *Replacer, body []byte, records bool) {
	buf := make([]byte, 32<<10)
	src := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	start := cputime.Process()
	for b.Loop() {
		src.Reset(body)
		var in io.Reader = src
		if records {
			in = recordReader{src}
		}
		rd := r.NewReader(in)
		if _, err := io.CopyBuffer(io.Discard, onlyReader{rd}, buf); err != nil {
			b.Fatal(err)
		}
		_ = rd.Close()
	}
	reportPerCore(b, len(body), cputime.Process()-start)
}

// recordReader returns at most a TLS record's 16 KiB of data per Read.
type recordReader struct{ r io.Reader }

func (r recordReader) Read(p []byte) (int, error) { return r.r.Read(p[:min(len(p), 16<<10)]) }

// BenchmarkOneShotEscaped is BenchmarkOneShot's 1 MiB no-match row with
// every / written \/, as PHP's json_encode writes URLs: the escapes stage
// finds escapes that decode to pattern bytes in every line and replaces
// nothing. The stream row reads it as BenchmarkStreamRecords does.
func BenchmarkOneShotEscaped(b *testing.B) {
	lines, secrets := benchBody(1<<20, 10, 0)
	body := bytes.ReplaceAll(lines, []byte("/"), []byte(`\/`))
	r := Compile(secrets)
	b.Run("oneshot", func(b *testing.B) {
		dst := make([]byte, 0, 2*len(body))
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		start := cputime.Process()
		for b.Loop() {
			dst, _ = r.Replace(dst[:0], body)
		}
		reportPerCore(b, len(body), cputime.Process()-start)
	})
	b.Run("stream", func(b *testing.B) {
		benchReader(b, r, body, true)
	})
}
