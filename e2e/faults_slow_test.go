package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowKind is a way of holding a connection to keyhole open while doing
// nothing useful with it.
type slowKind struct {
	name string
	n    int // connections of this kind
	// keyhole must close each connection between min and max after it
	// went slow.
	min, max time.Duration
	// open returns a connection gone slow, and the bytes to trickle into
	// it one at a time (none: it stays silent).
	open func(t *testing.T) (net.Conn, string)
}

// slowResult is what became of one slow connection.
type slowResult struct {
	kind   int
	closed time.Duration // after it went slow; 0 when keyhole never closed it
}

const trickleEvery = 200 * time.Millisecond

// watchSlow trickles bytes into c until keyhole closes it or giveUp passes,
// and reports when c was closed.
func watchSlow(kind int, c net.Conn, trickle string, giveUp time.Duration, out chan<- slowResult) {
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_ = c.SetReadDeadline(start.Add(giveUp))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			closed <- 0
			return
		}
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(trickleEvery)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case d := <-closed:
			c.Close()
			out <- slowResult{kind: kind, closed: d}
			return
		case <-tick.C:
			if trickle != "" {
				_, _ = c.Write([]byte{trickle[i%len(trickle)]})
			}
		}
	}
}

func TestSlowClientsAreCutOff(t *testing.T) {
	const (
		header    = time.Second
		handshake = time.Second
		idle      = 3 * time.Second
		slack     = 1500 * time.Millisecond
		giveUp    = 10 * time.Second
	)
	k, up := newDiscWorld(t, "KEYHOLE_HEADER_TIMEOUT=1s", "KEYHOLE_HANDSHAKE_TIMEOUT=1s", "KEYHOLE_IDLE_TIMEOUT=3s")
	for _, url := range []string{"https://disc.test/ok", "http://plaindisc.test/ok"} {
		assertServesDisc(t, k, url) // pooled upstream connections count in the baseline
	}
	base := k.settle(t, -1)
	dial := func(t *testing.T) net.Conn {
		c, err := net.DialTimeout("tcp", k.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	connect := func(t *testing.T) net.Conn {
		c := dial(t)
		fmt.Fprintf(c, "CONNECT disc.test:443 HTTP/1.1\r\nHost: disc.test:443\r\n\r\n")
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: got %v %v, want 200", resp, err)
		}
		return c
	}
	slowHeader := "X-Slow: " + strings.Repeat("a", 200)
	kinds := []slowKind{
		{name: "proxy request header trickled", n: 40, max: header + slack, open: func(t *testing.T) (net.Conn, string) {
			c := dial(t)
			fmt.Fprintf(c, "CONNECT disc.test:443 HTTP/1.1\r\n")
			return c, slowHeader
		}},
		{name: "plain request header trickled", n: 40, max: header + slack, open: func(t *testing.T) (net.Conn, string) {
			c := dial(t)
			fmt.Fprintf(c, "GET http://plaindisc.test/ok HTTP/1.1\r\nHost: plaindisc.test\r\n")
			return c, slowHeader
		}},
		{name: "silent after CONNECT", n: 30, max: handshake + slack, open: func(t *testing.T) (net.Conn, string) {
			return connect(t), ""
		}},
		{name: "TLS handshake trickled", n: 30, max: handshake + slack, open: func(t *testing.T) (net.Conn, string) {
			c := connect(t)
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00}) // a 512-byte handshake record follows
			return c, strings.Repeat("\x00", 512)
		}},
		{name: "inner request header trickled", n: 30, max: header + slack, open: func(t *testing.T) (net.Conn, string) {
			c := dialTunnel(t, k, "disc.test")
			fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: disc.test\r\n")
			return c, slowHeader
		}},
		{name: "silent after the inner handshake", n: 20, max: idle + slack, open: func(t *testing.T) (net.Conn, string) {
			return dialTunnel(t, k, "disc.test"), ""
		}},
		{name: "idle between inner requests", n: 10, min: idle - 500*time.Millisecond, max: idle + slack, open: func(t *testing.T) (net.Conn, string) {
			c := dialTunnel(t, k, "disc.test")
			fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: disc.test\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: got %v %v, want 200", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			return c, ""
		}},
	}
	results := make(chan slowResult, 256)
	total := 0
	for i, kind := range kinds {
		for range kind.n {
			c, trickle := kind.open(t)
			go watchSlow(i, c, trickle, giveUp, results)
			total++
		}
	}
	// A client that stops reading a response: keyhole's writes to it
	// stall, and the idle timeout must end them, and the upstream request.
	for range 2 {
		c := openRequest(t, k, "https", "GET", "/flood", "")
		defer c.Close()
	}
	stalled := time.Now()

	// Meanwhile, other clients are served at once.
	for _, url := range []string{"https://disc.test/ok", "http://plaindisc.test/ok"} {
		start := time.Now()
		assertServesDisc(t, k, url)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v with %d slow connections open", url, d, total)
		}
	}
	t.Logf("%d slow connections open: %v", total, k.stats(t))

	late := make([]int, len(kinds))
	early := make([]int, len(kinds))
	for range total {
		r := <-results
		kind := kinds[r.kind]
		switch {
		case r.closed == 0 || r.closed > kind.max:
			late[r.kind]++
		case r.closed < kind.min:
			early[r.kind]++
		}
	}
	for i, kind := range kinds {
		if late[i] > 0 {
			t.Errorf("%s: %d of %d connections still open after %v, want them closed", kind.name, late[i], kind.n, kind.max)
		}
		if early[i] > 0 {
			t.Errorf("%s: %d of %d connections closed before %v, want them kept open that long", kind.name, early[i], kind.n, kind.min)
		}
	}
	for range 2 {
		select {
		case end := <-up.floods:
			if d := end.Sub(stalled); d > idle+slack {
				t.Errorf("a client that stopped reading held its upstream request for %v, want at most %v", d, idle+slack)
			}
		case <-time.After(time.Until(stalled.Add(giveUp))):
			t.Fatalf("a client that stopped reading still held its upstream request after %v", giveUp)
		}
	}
	up.waitIdle(t)
	k.assertNothingOpen(t)
	if after := k.settle(t, base.FDs+2); after.FDs > base.FDs+2 {
		t.Errorf("keyhole's file descriptors: got %d, want at most %d (baseline %d + 2)", after.FDs, base.FDs+2, base.FDs)
	}
}
