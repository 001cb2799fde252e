package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkKeepAliveRequest measures one request through a keep-alive
// tunnel with a placeholder injected and the 1 KiB response scrubbed: the
// whole proxy path, client and upstream included (compare with
// BenchmarkKeepAliveDirect for the cost outside keyhole).
func BenchmarkKeepAliveRequest(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	b.Setenv("PROXY_BENCH_KEY", proxyTestSecret)
	tp := startTestProxy(b, up, `
secrets:
  KEY:
    source: env:PROXY_BENCH_KEY
    hosts: [api.example.test]
resolve:
  api.example.test: UPSTREAM
`, Config{})
	c := tp.client()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/small", nil)
		req.Header.Set("Authorization", "Bearer <<KEY>>")
		for pb.Next() {
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	// The record of the last request is written when goproxy closes its
	// body, which may be just after the client has read it.
	for deadline := time.Now().Add(time.Second); strings.Count(tp.auditBuf.String(), `"decision":"allow"`) < b.N; {
		if time.Now().After(deadline) {
			b.Fatalf("%d audit records for %d requests", strings.Count(tp.auditBuf.String(), `"decision":"allow"`), b.N)
		}
		time.Sleep(time.Millisecond)
	}
}
