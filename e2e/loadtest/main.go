// Command loadtest measures keyhole side by side with no proxy at all, the
// bare proxy it is built on (a goproxy v1.9.3 MITM proxy) and Squid
// ssl-bump, in one run on one machine.
//
// Run it from the repository root:
//
//	go run ./e2e/loadtest                    # full: 5 rounds of 3 s, about 6 minutes
//	go run ./e2e/loadtest -quick             # 2 rounds of 1.5 s, about 2 minutes
//	go run ./e2e/loadtest -json results.json # also write every number as JSON
//
// Other flags: -keyhole PATH tests a built binary instead of building
// ./cmd/keyhole; -audit-log PATH sets keyhole's audit log (default a file in
// the run's temporary directory, like production; /dev/null measures
// without it); -rounds N and -duration D override the rounds and the
// length of a throughput round; -only a,b runs some scenarios only;
// -no-pin leaves the CPUs unpinned; -keyhole-env KEY=VALUE and
// -keyhole-log FILE run keyhole with GODEBUG traces and keep them, with the
// tool's round starts and every late SSE event, for diagnosis; -keyhole-b
// PATH measures a second keyhole binary in the same rounds (target
// keyhole-b, its column and its ratio to keyhole at the table's right): an
// A/B of two builds under the same machine conditions; -summarize
// a.json,b.json prints the rows of several runs' -json files side by side
// (each run, median, range, goals met) instead of running.
//
// One run builds keyhole (or takes -keyhole PATH), starts an in-process
// HTTPS upstream on 127.0.0.1 with a certificate for upstream.test, and
// starts the proxies as child processes so that their CPU time, system
// calls and memory can be read from /proc:
//
//   - baseline: this binary re-executed with -serve-baseline:
//     goproxy.NewProxyHttpServer, ConnectMitm with TLSConfigFromCA and a
//     cached CertStore, no injection, no scrubbing, no audit;
//   - squid: Debian's squid-openssl (/usr/sbin/squid, skipped with a note
//     when missing), one worker in the foreground with its own config in
//     the run's directory: ssl_bump bump all with leaves minted from its
//     own CA, the Authorization header replaced with the real value (as
//     keyhole injects it), no cache, no access log, upstream TLS verified
//     against the upstream's CA (squid.go);
//   - keyhole serve, with one secret BENCH for upstream.test and an audit
//     log file.
//
// Every client request carries "Authorization: Bearer <<BENCH>>", so
// keyhole injects on every request and scrubs every response. All proxies
// verify the upstream and keep their upstream connections alive.
//
// With two CPUs or more, the proxies run on the last CPU (taskset) and the
// tool, whose clients and upstream are the load, on the others: each proxy
// is measured on a core of its own rather than against its own load.
//
// The scenarios run one after another; the throughput ones take the
// targets in turn round by round (direct, baseline, squid, keyhole,
// direct, ...) so that all meet the same machine conditions, and many
// short rounds make the median robust to bursts of other work on a shared
// machine. The table shows each target's median of the rounds (or its
// worst round, where the row says so) and keyhole's ratio to the row's
// reference:
//
//   - keepalive_small: 32 keep-alive clients GET a 1 KiB body: requests/s
//     (vs direct), proxy CPU per request (utime+stime from /proc/PID/stat,
//     vs baseline), read and write system calls per request
//     (/proc/PID/io), latency p50/p99, then each proxy's peak RSS (VmHWM).
//   - newconn_close and newconn_hangup: 12 clients each open a new TCP and
//     TLS connection through CONNECT per request, and either send
//     "Connection: close" or hang up after the response: connections/s
//     and CPU per connection (vs squid), and the upstream connections the
//     proxy opened per 1000 requests.
//   - large_download: 6 keep-alive clients GET 1 MiB bodies: MB/s and CPU
//     per MiB (vs baseline).
//   - sse: each round starts right after a 1 s burst of load on every
//     proxy at once (8 keep-alive clients of 1 KiB and 2 of 1 MiB each),
//     then opens 32 streams of 20 server-sent events 50 ms apart per
//     target, each stamped with its write time; the delay to the client's
//     read directly and through each proxy, all at once with their events
//     interleaved; each proxy's p99 minus direct's in the same round, the
//     worst round of that, and the worst round of keyhole's p99 minus the
//     baseline's.
//   - h2_multiplexed: 4 clients with one HTTP/2 connection each, 32
//     concurrent streams of 1 KiB responses, through the baseline and
//     keyhole (Squid does not speak HTTP/2 to clients): CPU per request vs
//     keyhole's own keepalive_small figure.
//   - idle_tunnels: on a freshly restarted baseline and keyhole, 500 MITM
//     tunnels that each made one request and stay idle: (RSS with them −
//     RSS before)/500, and the proxy's open files before, with, and after
//     closing them.
//
// The goals are issue 18's: keep-alive CPU per request ≤ 0.6x the
// baseline's and requests/s ≥ 0.9x direct's; 1 MiB downloads ≥ 1.0x the
// baseline's MB/s at ≤ 1.0x its CPU per MiB; new connections/s ≥ 1.0x
// Squid's; SSE p99 added over direct ≤ the baseline's in every round and ≤
// 5 ms; HTTP/2 CPU per request ≤ keyhole's HTTP/1.1 keep-alive figure; and
// issue 9's ≤ 40 KiB per idle tunnel and ≤ 64 MiB peak RSS. The tool exits
// 0 whether or not goals are met, and 1 when it cannot run.
//
// Everything stays on 127.0.0.1 (Squid reaches the upstream on port 443
// of another loopback address, 127.0.44.x, which binding needs root).
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
	if len(o.summarize) > 0 {
		return summarize(o.summarize, stdout)
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
	// keyholeB is a second keyhole binary, run as the target keyhole-b
	// next to keyhole, round by round: an A/B of two builds in one run.
	keyholeB string
	// summarize lists -json files of earlier runs: instead of running,
	// print their rows side by side (summarize).
	summarize []string
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
	fs.StringVar(&o.keyholeB, "keyhole-b", "", "also measure this keyhole binary, as keyhole-b, in the same rounds (an A/B of two builds; the table adds its column and its ratio to keyhole)")
	fs.StringVar(&o.keyholeLog, "keyhole-log", "", "write every line keyhole prints on stderr to this file, timestamped, with the tool's round starts (for diagnosis)")
	fs.Func("summarize", "do not run: print the rows of these -json files (comma-separated) side by side as a Markdown table, with each row's median, range and goals met", func(v string) error {
		o.summarize = strings.Split(v, ",")
		return nil
	})
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
