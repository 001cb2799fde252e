package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a running `keyhole serve`.
type server struct {
	cmd  *exec.Cmd
	Addr string // the proxy's address, 127.0.0.1:port
	done chan struct{}

	mu   sync.Mutex
	logs []string // keyhole's stderr, the first maxLogLines lines
}

// maxLogLines bounds the stderr lines kept for an error report.
const maxLogLines = 50

var readyLine = regexp.MustCompile(`msg="keyhole is listening" addr=(\S+)`)

// startServer runs bin serve on rules with the given KEYHOLE_* settings
// (and none from the caller's environment) and waits for its ready line.
func startServer(ctx context.Context, bin, rules, listen string, settings ...string) (*server, error) {
	cmd := exec.Command(bin, "serve", "--listen", listen, "--rules", rules)
	cmd.Env = append(CleanEnv(), settings...)
	// A process group of its own: Ctrl-C in the terminal reaches the demo,
	// which then stops keyhole, rather than both at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	s := &server{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start keyhole: %w", err)
	}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.keep(sc.Text())
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case s.Addr = <-addr:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("keyhole exited before it was ready; its log:\n%s", s.log())
	case <-time.After(30 * time.Second):
		s.Stop()
		return nil, fmt.Errorf("keyhole was not ready after 30s; its log:\n%s", s.log())
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
}

func (s *server) keep(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logs) < maxLogLines {
		s.logs = append(s.logs, line)
	}
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.logs, "\n")
}

// Stop sends SIGTERM, as Ctrl-C would, and waits for keyhole to exit
// (killing it after 15 s).
func (s *server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// CleanEnv is the caller's environment without proxy variables (which
// would route keyhole's own upstream traffic elsewhere) and without
// KEYHOLE_* settings, for a keyhole process started with settings of its
// own: the demo's, and the e2e tests' and load tool's.
func CleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		if strings.HasPrefix(name, "KEYHOLE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
