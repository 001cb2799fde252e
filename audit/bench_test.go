package audit_test

import (
	"path/filepath"
	"testing"
	"time"

	"keyhole/audit"
	"keyhole/cputime"
)

// BenchmarkLogFileParallel writes chained records from many goroutines to
// a File, as keyhole serve does under load: the batches written when the
// buffer fills are part of the cost, and so is waiting for the chain.
func BenchmarkLogFileParallel(b *testing.B) {
	dir := b.TempDir()
	l, f, err := audit.OpenChained(filepath.Join(dir, "audit.log"), nil, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		rec := audit.Record{Time: time.Now(), RequestID: "3f9a0c12be47-1a", Agent: "billing", Method: "GET",
			Scheme: "https", Host: "api.example.test", Port: 443, Path: "/small", Status: 200,
			Decision: audit.Allow, Secrets: []string{"KEY"}, Duration: 2 * time.Millisecond, BytesOut: 1024}
		for pb.Next() {
			if err := l.Log(&rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cputime.Process()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
}
