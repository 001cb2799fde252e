package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/certs"
	"keyhole/cputime"
	"keyhole/inject"
	"keyhole/metrics"
	"keyhole/rules"
)

// benchKeyRules is the secret every request benchmark injects: KEY
// (proxyTestSecret, which setBenchKey puts in its variable) toward
// api.example.test. Benchmarks add their own secrets after it.
const benchKeyRules = `
secrets:
  KEY:
    source: env:PROXY_BENCH_KEY
    hosts: [api.example.test]
`

// benchResolve sends api.example.test to the test upstream.
const benchResolve = `
resolve:
  api.example.test: UPSTREAM
`

// setBenchKey sets the variable benchKeyRules reads KEY from.
func setBenchKey(b *testing.B) { b.Setenv("PROXY_BENCH_KEY", proxyTestSecret) }

// startBenchProxy starts a proxy for the request benchmarks: KEY of
// benchKeyRules, api.example.test resolving to up.
func startBenchProxy(b *testing.B, up *testUpstream) *testProxy {
	setBenchKey(b)
	return startTestProxy(b, up, benchKeyRules+benchResolve, Config{})
}

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
	tp := startBenchProxy(b, up)
	c := tp.client()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	cpu := cputime.Process()
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
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	// The record of the last request is written when goproxy closes its
	// body, which may be just after the client has read it.
	for deadline := time.Now().Add(time.Second); strings.Count(tp.auditBuf.String(), `"decision":"allow"`) < b.N; {
		if time.Now().After(deadline) {
			b.Fatalf("%d audit records for %d requests", strings.Count(tp.auditBuf.String(), `"decision":"allow"`), b.N)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkExchange measures keyhole's own work for one request of a
// keep-alive tunnel, with no client, upstream, TLS or goproxy around it:
// the tunnel's RoundTrip (the checks, the injection of a placeholder, the
// outgoing request), the scrub of a 1 KiB response read to its end, the
// audit record sealed into the chain of a batched file (as keyhole serve
// writes it) and the metrics. The upstream is a transport that answers at
// once; the request and the response it starts from are built anew each
// time, as goproxy and net/http would, and counted.
func BenchmarkExchange(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	setBenchKey(b)
	dir := b.TempDir()
	set, err := rules.LoadData(filepath.Join(dir, "keyhole.yaml"), []byte(benchKeyRules))
	if err != nil {
		b.Fatal(err)
	}
	authority, err := certs.LoadOrCreate(dir, certs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	logPath := filepath.Join(dir, "audit.log")
	log, file, err := audit.OpenChained(logPath, nil, dir)
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{}, Deps{Rules: set, Authority: authority, Audit: log, Observer: metrics.New()})
	if err != nil {
		b.Fatal(err)
	}
	p.upstreams = newUpstreams(func(bool) upstreamTransport { return answerAtOnce{body} })
	t := &tunnel{p: p, caller: &caller{Caller: inject.Caller{Agent: rules.AnonymousAgent}, checked: p.policy.Load()},
		dest: destination{host: "api.example.test", port: 443}, conn: &clientConn{}, tls: true}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cputime.Process()
	for i := 0; i < b.N; i++ {
		// As the HTTP/1 loop hands it over: the URL made absolute.
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: "api.example.test", Path: "/small"}, Host: "api.example.test",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RequestURI: "/small", Body: http.NoBody,
			Header: http.Header{
				"Accept":          {"*/*"},
				"Accept-Encoding": {"gzip"},
				"Authorization":   {"Bearer <<KEY>>"},
				"User-Agent":      {"Go-http-client/1.1"},
			}}
		resp := t.exchange(req)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("got %v; want 200", resp.Status)
		}
		if n, _ := io.Copy(io.Discard, resp.Body); n != int64(len(body)) {
			b.Fatalf("got %d bytes, want %d", n, len(body))
		}
		resp.Body.Close()
		t.conn.endExchange()
	}
	b.StopTimer()
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if err := file.Close(); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		b.Fatal(err)
	}
	if got := bytes.Count(data, []byte(`"decision":"allow"`)); got != b.N {
		b.Fatalf("%d audit records for %d requests", got, b.N)
	}
}

// answerAtOnce is an upstream transport that answers every request with
// body, as a keep-alive HTTP/1.1 upstream would.
type answerAtOnce struct{ body []byte }

func (a answerAtOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "Bearer "+proxyTestSecret {
		return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"application/octet-stream"},
			"Content-Length": {strconv.Itoa(len(a.body))},
			"Date":           {"Thu, 03 Dec 2026 14:00:00 GMT"},
		},
		ContentLength: int64(len(a.body)), Body: io.NopCloser(bytes.NewReader(a.body)), Request: req}, nil
}

func (answerAtOnce) CloseIdleConnections() {}
