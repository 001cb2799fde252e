// Command loadtest measures keyhole against the bare proxy it is built on,
// a goproxy v1.9.3 MITM proxy, in one run on one machine.
//
// Run it from the repository root:
//
//	go run ./e2e/loadtest                    # full: 5 rounds of 3 s, under 3 minutes
//	go run ./e2e/loadtest -quick             # 2 rounds of 1.5 s, under a minute
//	go run ./e2e/loadtest -json results.json # also write every number as JSON
//
// Other flags: -keyhole PATH tests a built binary instead of building
// ./cmd/keyhole; -audit-log PATH sets keyhole's audit log (default a file in
// the run's temporary directory, like production; /dev/null measures
// without it); -rounds N and -duration D override the rounds and the
// length of a throughput round; -only a,b runs some scenarios only.
//
// One run builds keyhole (or takes -keyhole PATH), starts an in-process
// HTTPS upstream on 127.0.0.1 with a certificate for upstream.test, and
// starts two proxies as child processes so that their CPU time and memory
// can be read from /proc: the baseline (this binary re-executed with
// -serve-baseline: goproxy.NewProxyHttpServer, ConnectMitm with
// TLSConfigFromCA and a cached CertStore, no injection, no scrubbing) and
// keyhole serve, with one secret BENCH for upstream.test and an audit log
// file. Every client request carries "Authorization: Bearer <<BENCH>>", so
// keyhole injects on every request and scrubs every response. Both proxies
// verify the upstream against the tool's CA and keep up to 1024 idle
// upstream connections per host (keyhole's pool size; net/http's default
// of 2 would starve the baseline under 32 clients).
//
// The scenarios run one after another; the throughput ones alternate the
// proxies round by round (baseline, keyhole, baseline, keyhole, ...) so
// that both meet the same machine conditions, and many short rounds make
// the median robust to bursts of other work on a shared machine. The table
// shows the median of the rounds (peak RSS and idle tunnels are measured
// once) and the ratio keyhole/baseline:
//
//   - keepalive_small: 32 keep-alive clients GET a 1 KiB body: requests/s,
//     latency p50/p99, proxy CPU per request (utime+stime from
//     /proc/PID/stat), then each proxy's peak RSS (VmHWM) since it started.
//   - newconn_close and newconn_hangup: 12 clients each open a new TCP and
//     TLS connection through CONNECT per request, and either send
//     "Connection: close" or hang up after the response: connections/s,
//     proxy CPU per connection, and the upstream connections the proxy
//     opened per 1000 requests (the upstream counts accepted connections).
//   - large_download: 6 keep-alive clients GET 1 MiB bodies: MB/s.
//   - sse: 32 streams of 20 server-sent events 50 ms apart (640 events per
//     round and target), each stamped with its write time; the delay to the
//     client's read directly and through each proxy, all three at once with
//     their events interleaved, and each proxy's percentile minus direct's
//     in the same round.
//   - idle_tunnels: on freshly restarted proxies, 500 MITM tunnels that each
//     made one request and stay idle: (RSS with them − RSS before)/500, and
//     the proxy's open files before, with, and after closing them.
//
// The goals (keyhole/baseline, same run): keep-alive CPU per request ≤
// 1.15x and requests/s ≥ 0.9x; new connections/s ≥ 1.0x; 1 MiB downloads ≥
// 0.8x; SSE p99 added delay < 1 ms over direct; ≤ 40 KiB per idle tunnel;
// peak RSS under keep-alive load ≤ 64 MiB. The tool exits 0 whether or not
// goals are met, and 1 when it cannot run.
//
// The client load generator shares the machine's CPUs with the proxy under
// test; that is the same for both proxies. Everything stays on 127.0.0.1.
// Child processes run in their own process group and are stopped on exit
// and on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		os.Exit(1)
	}
}

// errUsage reports flags that the flag package has already described.
var errUsage = errors.New("invalid usage (see -h)")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 0 && args[0] == "-serve-baseline" {
		return serveBaseline(ctx, args[1:], stderr)
	}
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	err = loadtest(ctx, o, stdout, stderr)
	if err != nil && ctx.Err() != nil {
		return errors.New("interrupted; the proxies were stopped")
	}
	return err
}

// options are the command-line flags.
type options struct {
	quick    bool
	keyhole  string
	jsonPath string
	auditLog string
	rounds   int
	duration time.Duration
	only     string
	noPin    bool
	// keyholeEnv are extra KEY=VALUE settings for keyhole's environment
	// (GODEBUG=gctrace=1 ...), and keyholeLog a file that gets every line
	// keyhole writes to stderr, timestamped, with the tool's round starts
	// between them: for diagnosis, not for measurement.
	keyholeEnv []string
	keyholeLog string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "short run: 2 rounds of 1.5s per scenario (under a minute)")
	fs.StringVar(&o.keyhole, "keyhole", "", "keyhole binary to test (default: go build ./cmd/keyhole into a temporary directory)")
	fs.StringVar(&o.jsonPath, "json", "", "write every measurement as JSON to this file (default: none)")
	fs.StringVar(&o.auditLog, "audit-log", "", "keyhole's audit log (default: a file in the temporary directory; /dev/null to measure without it)")
	fs.IntVar(&o.rounds, "rounds", 0, "rounds per scenario (default 5, or 2 with -quick)")
	fs.DurationVar(&o.duration, "duration", 0, "length of one throughput round (default 3s, or 1.5s with -quick)")
	fs.BoolVar(&o.noPin, "no-pin", false, "do not pin the proxies to the last CPU and the tool to the others")
	fs.Func("keyhole-env", "add `KEY=VALUE` to keyhole's environment, e.g. GODEBUG=gctrace=1 (repeatable; for diagnosis)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.keyholeEnv = append(o.keyholeEnv, v)
		return nil
	})
	fs.StringVar(&o.keyholeLog, "keyhole-log", "", "write every line keyhole prints on stderr to this file, timestamped, with the tool's round starts (for diagnosis)")
	fs.StringVar(&o.only, "only", "", "run only these scenarios, comma-separated: "+strings.Join(scenarioNames(), ",")+" (default: all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errUsage
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.rounds < 0 || o.duration < 0 {
		return o, errors.New("-rounds and -duration must not be negative")
	}
	for name := range strings.SplitSeq(o.only, ",") {
		if name != "" && !slices.Contains(scenarioNames(), name) {
			return o, fmt.Errorf("-only: unknown scenario %q (want some of %s)", name, strings.Join(scenarioNames(), ","))
		}
	}
	return o, nil
}

// scenarioNames lists the scenarios in the order they run.
func scenarioNames() []string {
	return []string{sKeepAlive, sClose, sHangUp, sLarge, sSSE, sH2, sIdle}
}

// plan is how much load one run applies.
type plan struct {
	Quick        bool          `json:"quick"`
	Rounds       int           `json:"rounds"`
	Duration     time.Duration `json:"round_duration_ns"`
	Workers      int           `json:"keepalive_clients"`
	ConnWorkers  int           `json:"newconn_clients"`
	LargeWorkers int           `json:"large_clients"`
	Streams      int           `json:"sse_streams"`
	Tunnels      int           `json:"idle_tunnels"`
	AuditLog     string        `json:"audit_log"`
	Only         []string      `json:"only,omitempty"` // scenarios to run; empty: all
}

// runs reports whether the plan includes scenario name.
func (p plan) runs(name string) bool {
	return len(p.Only) == 0 || slices.Contains(p.Only, name)
}

func newPlan(o options) plan {
	p := plan{Quick: o.quick, Rounds: 5, Duration: 3 * time.Second, Workers: 32, ConnWorkers: 12, LargeWorkers: 6, Streams: 32, Tunnels: 500, AuditLog: o.auditLog}
	if o.quick {
		p.Rounds, p.Duration = 2, 1500*time.Millisecond
	}
	if o.rounds > 0 {
		p.Rounds = o.rounds
	}
	if o.duration > 0 {
		p.Duration = o.duration
	}
	for name := range strings.SplitSeq(o.only, ",") {
		if name != "" {
			p.Only = append(p.Only, name)
		}
	}
	return p
}

// raiseFileLimit lifts the soft limit on open files to the hard limit, and
// fails if that is below need. Calling Setrlimit also makes the children
// inherit the raised limit (os/exec restores the original soft limit only
// when the program never set it).
func raiseFileLimit(need uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise open files limit: %w", err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise open files limit: %w", err)
	}
	if l.Cur < need {
		return fmt.Errorf("raise open files limit: the hard limit is %d, want at least %d (ulimit -Hn)", l.Cur, need)
	}
	return nil
}
