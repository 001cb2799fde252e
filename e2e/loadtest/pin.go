package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// proxyCPU is the CPU the proxies run on (taskset -c), empty when they
// are not pinned. pinCPUs sets it.
var proxyCPU string

// pinCPUs puts the proxies on the last CPU and this tool (the clients and
// the upstream) on the others, so that a proxy's work and the load it is
// measured under do not compete for one core, as on the 2-core
// machine. It returns why it did not, when it did not: one CPU, or no
// taskset.
func pinCPUs() string {
	n := runtime.NumCPU()
	if n < 2 {
		return "proxies not pinned: one CPU"
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "proxies not pinned: no taskset on PATH"
	}
	var set unix.CPUSet
	for i := range n - 1 {
		set.Set(i)
	}
	// Twice: a thread started while the first pass ran may have missed it.
	for range 2 {
		if err := pinThreads(&set); err != nil {
			return fmt.Sprintf("proxies not pinned: %v", err)
		}
	}
	// The runtime sized GOMAXPROCS from the affinity at start.
	runtime.GOMAXPROCS(n - 1)
	proxyCPU = strconv.Itoa(n - 1)
	return ""
}

// pinThreads sets the affinity of every thread of this process; threads
// started later inherit it from the thread that starts them.
func pinThreads(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("pin the tool: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil {
			return fmt.Errorf("pin the tool: thread %d: %w", tid, err)
		}
	}
	return nil
}
