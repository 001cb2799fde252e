package scrub

import (
	"fmt"
	"testing"
	"time"

	"keyhole/cputime"
)

// BenchmarkOneShot is the row: one-shot Replace with ten secrets
// and all their forms, on 1 MiB and 64 KiB JSON-lines bodies with no match
// and with a few. Besides the wall-clock B/s it reports GiB/s/core, the
// bytes scrubbed per second of CPU time the process spent (see cpuTime),
// which a machine shared with other work does not skew: a benchmark that
// waits for a core does not use CPU time meanwhile.
func BenchmarkOneShot(b *testing.B) {
	for _, tc := range []struct{ size, matches int }{{1 << 20, 0}, {1 << 20, 8}, {64 << 10, 0}, {64 << 10, 2}} {
		body, secrets := benchBody(tc.size, 10, tc.matches)
		r := Compile(secrets)
		b.Run(fmt.Sprintf("size=%dKiB/matches=%d", tc.size>>10, tc.matches), func(b *testing.B) {
			dst := make([]byte, 0, 2*len(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			start := cputime.Process()
			for b.Loop() {
				dst, _ = r.Replace(dst[:0], body)
			}
			reportPerCore(b, len(body), cputime.Process()-start)
		})
	}
}

// BenchmarkStream is BenchmarkOneShot through a Reader with 32 KiB reads,
// for ten and a hundred secrets, with the same per-core figure. Unlike
// BenchmarkReader it closes each Reader, as the proxy closes a response
// body, so that its buffers are reused.
func BenchmarkStream(b *testing.B) {
	for _, n := range []int{10, 100} {
		body, secrets := benchBody(benchSize, n, 8)
		r := Compile(secrets)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			benchReader(b, r, body, false)
		})
	}
}

// reportPerCore reports GiB/s/core: size bytes per loop iteration over
// the CPU time cpu that the loop took.
func reportPerCore(b *testing.B, size int, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/(1<<30), "GiB/s/core")
	}
}
