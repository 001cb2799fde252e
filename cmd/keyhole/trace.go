package main

import (
	"fmt"
	"os"
	"runtime/trace"
)

// startTrace writes a Go execution trace of the whole run to the file at
// path (the KEYHOLE_TRACE setting; empty: nothing), for diagnosis (go tool
// trace FILE): which goroutines waited to run, and for what (collections,
// the scheduler, the system). The trace holds scheduling and collection
// events and stacks, no memory contents: no secret value is in it. The
// returned function stops the trace and closes the file.
func startTrace(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("KEYHOLE_TRACE: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("KEYHOLE_TRACE: %w", err)
	}
	return func() { trace.Stop(); f.Close() }, nil
}
