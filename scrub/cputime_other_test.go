//go:build !unix

package scrub

import "time"

// cpuTime is not measured here; benchmarks then report no per-core figure.
func cpuTime() time.Duration { return 0 }
