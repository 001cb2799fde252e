package scrub

import (
	"fmt"
	"testing"
)

// BenchmarkCompile measures building a Replacer for 10, 100 and 1000
// realistic secrets, as a rules load does once.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		_, secrets := benchBody(1<<10, n, 0)
		b.Run(fmt.Sprintf("secrets=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Compile(secrets)
			}
		})
	}
}
