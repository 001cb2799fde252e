package transport

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"

	"keyhole/cputime"
)

// BenchmarkLargeBody measures a 1 MiB HTTP/1.1 response body read in the
// 16 KiB pieces keyhole's HTTP/1 loop asks for, over a pooled connection:
// the process's CPU per MiB, the test server's TLS included.
func BenchmarkLargeBody(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	u := startUpstream(b, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}, Config{})
	buf := make([]byte, 16<<10)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	cpu := cputime.Process()
	for range b.N {
		req, _ := http.NewRequest(http.MethodGet, u.url+"/large", nil)
		resp, err := u.tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			m, err := resp.Body.Read(buf)
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if n != len(body) {
			b.Fatalf("got %d bytes, want %d", n, len(body))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/MiB")
	if d := u.dials.Load(); d != 1 {
		b.Fatalf("dials: got %d, want 1 (the connection is reused)", d)
	}
}
