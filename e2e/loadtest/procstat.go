package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// cpuTicks returns the CPU time that process pid has used in user space
// (utime) and in the kernel (stime), in clock ticks, from /proc/PID/stat.
func cpuTicks(pid int) (user, sys uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu: %w", err)
	}
	return parseStatTimes(b)
}

// parseStat returns utime+stime from the contents of /proc/PID/stat.
func parseStat(b []byte) (uint64, error) {
	u, s, err := parseStatTimes(b)
	return u + s, err
}

// parseStatTimes returns utime and stime from the contents of
// /proc/PID/stat. The command name (field 2) is in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')' (proc(5)).
func parseStatTimes(b []byte) (user, sys uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("parse stat: no ')' after the command name")
	}
	// After ')' come field 3 (state) onwards: utime is field 14 and stime
	// field 15, so indexes 11 and 12 here.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse stat: got %d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse stat: stime: %w", err)
	}
	return utime, stime, nil
}

// memory is a process's resident set, from /proc/PID/status.
type memory struct {
	RSSKiB  uint64 // VmRSS: resident now
	PeakKiB uint64 // VmHWM: highest resident since the process started
}

// readMemory returns process pid's VmRSS and VmHWM.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read memory: %w", err)
	}
	return parseStatus(b)
}

// parseStatus reads VmRSS and VmHWM (both "NNN kB") from the contents of
// /proc/PID/status.
func parseStatus(b []byte) (memory, error) {
	var m memory
	var seen int
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
		if unit != "kB" {
			return memory{}, fmt.Errorf("parse status: %s: got unit %q, want kB", key, unit)
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse status: %s: %w", key, err)
		}
		if key == "VmRSS" {
			m.RSSKiB = n
		} else {
			m.PeakKiB = n
		}
		seen++
	}
	if seen != 2 {
		return memory{}, errors.New("parse status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// openFiles returns how many file descriptors process pid holds.
func openFiles(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("count open files: %w", err)
	}
	return len(ents), nil
}

// clockTicks returns the kernel's clock ticks per second (CLK_TCK), the
// unit of /proc/PID/stat times, from getconf; 100 if getconf fails (the
// value on every common Linux build).
func clockTicks(ctx context.Context) float64 {
	out, err := exec.CommandContext(ctx, "getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// loadAverage returns the machine's 1-minute load average from
// /proc/loadavg, or NaN if it cannot be read.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	first, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(first, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// ioCalls returns how many read and write system calls (read, readv,
// write, writev, sendmsg, recvmsg...) process pid has made, all its
// threads together, from /proc/PID/io (syscr + syscw).
func ioCalls(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("read io: %w", err)
	}
	return parseIO(b)
}

// parseIO returns syscr+syscw from the contents of /proc/PID/io.
func parseIO(b []byte) (uint64, error) {
	var sum uint64
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "syscr" && name != "syscw") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse io: %s: %w", name, err)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, errors.New("parse io: no syscr and syscw lines")
	}
	return sum, nil
}

// sched is what the scheduler did with a process's threads, summed over
// the threads alive when it is read.
type sched struct {
	waitNS   uint64 // time runnable but waiting for a CPU (schedstat's run_delay)
	switches uint64 // context switches, voluntary and not
}

// readSched sums /proc/PID/task/*/schedstat and the switch counts of
// /proc/PID/task/*/status. A thread that ends between the listing and the
// read is skipped.
func readSched(pid int) (sched, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return sched{}, fmt.Errorf("read sched: %w", err)
	}
	var s sched
	for _, t := range tasks {
		st, err1 := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		status, err2 := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err1 != nil || err2 != nil {
			continue
		}
		s.add(parseSched(st, status))
	}
	return s, nil
}

func (s *sched) add(o sched) {
	s.waitNS += o.waitNS
	s.switches += o.switches
}

// parseSched reads one thread's run_delay (the second number of
// schedstat) and its voluntary and nonvoluntary context switches; fields
// it cannot read count as 0.
func parseSched(schedstat, status []byte) sched {
	var s sched
	if f := strings.Fields(string(schedstat)); len(f) >= 2 {
		s.waitNS, _ = strconv.ParseUint(f[1], 10, 64)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if ok && (name == "voluntary_ctxt_switches" || name == "nonvoluntary_ctxt_switches") {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			s.switches += n
		}
	}
	return s
}
