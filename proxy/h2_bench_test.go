package proxy

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// h2BenchStreams is how many streams BenchmarkH2Request keeps in flight
// on its one tunnel: the loadtest's h2_multiplexed scenario has 8 per
// connection (32 workers over 4 connections).
const h2BenchStreams = 8

// BenchmarkH2Request measures one request over an h2 tunnel carrying
// h2BenchStreams concurrent streams, each with a placeholder injected and
// its 1 KiB response scrubbed: the whole proxy path, client and upstream
// (HTTP/1.1, as in the loadtest) included. Besides time it reports the
// process's CPU time and write system calls per request (client, proxy
// and upstream together: compare two builds, not with other benchmarks)
// and the latency p50 and p99 of a request.
func BenchmarkH2Request(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	up := startTestUpstream(b, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})
	tp := startBenchProxy(b, up)
	target := "api.example.test:443"
	cc := dialH2(b, tp, target)
	get := func() error {
		req, _ := http.NewRequest(http.MethodGet, "https://"+target+"/small", nil)
		req.Header.Set("Authorization", "Bearer <<KEY>>")
		resp, err := cc.RoundTrip(req)
		if err != nil {
			return err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != int64(len(body)) {
			b.Errorf("got a body of %d bytes, want %d", n, len(body))
		}
		return nil
	}
	if err := get(); err != nil { // the upstream connection, out of the timing
		b.Fatal(err)
	}
	lat := make([][]time.Duration, h2BenchStreams)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, w0 := processCPU(), processWrites()
	for i := range h2BenchStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if err := get(); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(start))
			}
		}()
	}
	wg.Wait()
	cpu1, w1 := processCPU(), processWrites()
	b.StopTimer()
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	if w0 >= 0 && w1 >= 0 {
		b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/op")
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	// Each record is written when the stream's body is done, which may be
	// just after the client has read it.
	want := b.N + 1
	for deadline := time.Now().Add(10 * time.Second); strings.Count(tp.auditBuf.String(), `"decision":"allow"`) < want; {
		if time.Now().After(deadline) {
			b.Fatalf("%d audit records for %d requests", strings.Count(tp.auditBuf.String(), `"decision":"allow"`), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processWrites returns the write system calls the process has made
// (syscw of /proc/self/io), or -1 where that is not known.
func processWrites() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
