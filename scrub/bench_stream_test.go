package scrub

import (
	"bytes"
	"fmt"
	"io"
	"testing"
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
			buf := make([]byte, 32<<10)
			src := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				src.Reset(body)
				rd := r.NewReader(recordReader{src})
				if _, err := io.CopyBuffer(io.Discard, onlyReader{rd}, buf); err != nil {
					b.Fatal(err)
				}
				_ = rd.Close()
			}
			reportPerCore(b, len(body), cpuTime()-start)
		})
	}
}

// recordReader returns at most a TLS record's 16 KiB of data per Read.
type recordReader struct{ r io.Reader }

func (r recordReader) Read(p []byte) (int, error) { return r.r.Read(p[:min(len(p), 16<<10)]) }
