//go:build unix

// Package cputime reads the CPU time the process has used, user and
// system, so that a benchmark can report CPU per operation: on a shared
// machine that is steadier than wall time, which counts the waits for a
// core too.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the user and system CPU time the process has used; 0
// when it cannot be read.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
