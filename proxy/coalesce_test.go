package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn is a net.Conn that records each Write it is given.
type recordingConn struct {
	net.Conn // nil: only the methods below are used
	mu       sync.Mutex
	writes   [][]byte
	writeErr error
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingConn) Read([]byte) (int, error)         { return 0, errors.New("nothing to read") }
func (c *recordingConn) Close() error                     { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

func (c *recordingConn) sent() (calls int, data string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []byte
	for _, w := range c.writes {
		all = append(all, w...)
	}
	return len(c.writes), string(all)
}

func newCoalescingConn() (*clientConn, *recordingConn) {
	rc := &recordingConn{}
	cc := &clientConn{Conn: rc, owner: newConns()}
	cc.owner.add(cc)
	cc.hijacked(time.Minute)
	cc.coalesceWrites(true)
	return cc, rc
}

func TestCoalescedWrites(t *testing.T) {
	head := strings.Repeat("h", 300)
	body := strings.Repeat("b", 1100)
	big := strings.Repeat("B", corkWrite+1)
	cases := []struct {
		name string
		run  func(cc *clientConn)
		// calls is the number of writes the connection saw once run
		// returned; want is what it received, in order.
		calls int
		want  string
	}{
		{"a small response leaves in one write at the end of the exchange", func(cc *clientConn) {
			cc.startExchange()
			_, _ = cc.Write([]byte(head))
			_, _ = cc.Write([]byte(body))
			cc.endExchange()
		}, 1, head + body},
		{"nothing is held while the response is unfinished and the proxy reads", func(cc *clientConn) {
			cc.startExchange()
			_, _ = cc.Write([]byte(head))
			_, _ = cc.Read(make([]byte, 1))
		}, 1, head},
		{"a large write takes what is held with it", func(cc *clientConn) {
			cc.startExchange()
			_, _ = cc.Write([]byte("5\r\n"))
			_, _ = cc.Write([]byte(big))
		}, 2, "5\r\n" + big}, // one writev; the recorder sees its two buffers
		{"between exchanges only tiny writes are held", func(cc *clientConn) {
			_, _ = cc.Write([]byte("tiny"))
			_, _ = cc.Write([]byte(head))
		}, 2, "tiny" + head},
		{"the held bytes never pass the limit", func(cc *clientConn) {
			cc.startExchange()
			for range corkPending / len(body) {
				_, _ = cc.Write([]byte(body))
			}
			_, _ = cc.Write([]byte(body))
		}, 2, strings.Repeat(body, corkPending/len(body)+1)}, // held ones, then the one over the limit, in one writev
		{"close sends what is held", func(cc *clientConn) {
			cc.startExchange()
			_, _ = cc.Write([]byte(head))
			_ = cc.Close()
		}, 1, head},
		{"turning coalescing off sends what is held", func(cc *clientConn) {
			cc.startExchange()
			_, _ = cc.Write([]byte(head))
			cc.coalesceWrites(false)
			_, _ = cc.Write([]byte(body))
		}, 2, head + body},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, rc := newCoalescingConn()
			tc.run(cc)
			calls, data := rc.sent()
			if calls != tc.calls || data != tc.want {
				t.Errorf("connection got %d writes of %d bytes; want %d writes of %d bytes", calls, len(data), tc.calls, len(tc.want))
			}
			if cc.pending != nil && len(*cc.pending) > corkPending {
				t.Errorf("%d bytes held, over the limit of %d", len(*cc.pending), corkPending)
			}
		})
	}
}

// A write that fails while flushing held bytes fails every later write,
// so that a handler writing to an agent that left finds out.
func TestCoalescedWriteErrorSticks(t *testing.T) {
	cc, rc := newCoalescingConn()
	cc.startExchange()
	if _, err := cc.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	rc.writeErr = errors.New("connection reset by peer")
	if err := cc.flushPending(); err == nil {
		t.Fatal("flush to a broken connection succeeded")
	}
	rc.writeErr = nil
	if _, err := cc.Write([]byte(strings.Repeat("x", corkWrite+1))); err == nil {
		t.Fatal("write after a failed flush succeeded")
	}
	if calls, _ := rc.sent(); calls != 0 {
		t.Fatalf("connection got %d writes after the failure", calls)
	}
}

// Before a read of the upstream body, what is held is sent at once after a
// small read (events must not wait), and after a bulk read only if the
// read waits longer than bulkFlushDelay.
func TestFlushBeforeUpstreamRead(t *testing.T) {
	cases := []struct {
		name     string
		lastRead int
		wait     time.Duration // how long the read takes
		want     int           // writes once it returned
	}{
		{"after a small read, at once", bulkRead - 1, 0, 1},
		{"after a bulk read that did not wait, not yet", bulkRead, 0, 0},
		{"after a bulk read that waited", bulkRead, 20 * bulkFlushDelay, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, rc := newCoalescingConn()
			cc.startExchange()
			_, _ = cc.Write([]byte("event: held\n\n"))
			if err := cc.beforeUpstreamRead(tc.lastRead); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tc.wait)
			cc.afterUpstreamRead()
			if calls, _ := rc.sent(); calls != tc.want {
				t.Fatalf("connection got %d writes, want %d", calls, tc.want)
			}
			cc.endExchange()
			if calls, data := rc.sent(); calls != 1 || data != "event: held\n\n" {
				t.Fatalf("after the exchange the connection got %d writes: %q", calls, data)
			}
		})
	}
}

// stepReader returns a bulk read first, then calls at its next Read, and
// ends.
type stepReader struct {
	reads int
	at    func()
}

func (r *stepReader) Read(p []byte) (int, error) {
	r.reads++
	switch r.reads {
	case 1:
		return len(p), nil
	case 2:
		r.at()
	}
	return 0, io.EOF
}

func (r *stepReader) Close() error { return nil }

// A body with a length may be held for bulk writes after a bulk read; a
// streamed body (SSE, chunked: no length) never is, so what keyhole wrote
// of it has left before it waits on the upstream again.
func TestStreamedBodiesAreNeverHeldForBulk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		streamed bool
		want     int // writes the agent got when the upstream was read again
	}{
		{"body with a length", false, 0},
		{"streamed body", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, rc := newCoalescingConn()
			cc.startExchange()
			got := -1
			up := &stepReader{at: func() { got, _ = rc.sent() }}
			b := newIdleBody(up, time.Minute, cc, tc.streamed)
			defer b.Close()
			if _, err := b.Read(make([]byte, bulkRead)); err != nil {
				t.Fatal(err)
			}
			_, _ = cc.Write([]byte("data: relayed\n\n"))
			_, _ = b.Read(make([]byte, bulkRead))
			if got != tc.want {
				t.Errorf("the agent had %d writes when the upstream was read again, want %d", got, tc.want)
			}
			cc.endExchange()
		})
	}
}

// scriptReader returns reads of the sizes in script (-1: the whole buffer),
// calling at before the last one, then ends.
type scriptReader struct {
	script []int
	at     func()
}

func (r *scriptReader) Read(p []byte) (int, error) {
	if len(r.script) == 0 {
		return 0, io.EOF
	}
	n := r.script[0]
	r.script = r.script[1:]
	if len(r.script) == 0 {
		r.at()
	}
	if n < 0 || n > len(p) {
		n = len(p)
	}
	return n, nil
}

func (r *scriptReader) Close() error { return nil }

// A short read right after one that filled its buffer returned what the
// source had left, without waiting: held writes stay held for a bulk write
// (a 1 MiB download sent every TLS record in a write of its own when a
// scrubber asking for what its buffer has room for left such remainders).
// A short read after a short one, the source running dry, still sends them.
func TestRemainderReadsKeepBulkWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script []int
		want   int // writes the agent got when the upstream was read last
	}{
		{"a remainder after a full read", []int{-1, 100, 16 << 10}, 0},
		{"a short read after a short read", []int{100, 100, 16 << 10}, 1},
		{"bulk reads", []int{-1, -1, -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, rc := newCoalescingConn()
			cc.startExchange()
			got := -1
			up := &scriptReader{script: tc.script, at: func() { got, _ = rc.sent() }}
			b := newIdleBody(up, time.Minute, cc, false)
			defer b.Close()
			buf := make([]byte, 16<<10)
			for i := range tc.script {
				if i == 1 {
					_, _ = cc.Write([]byte("record held back"))
				}
				if _, err := b.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			if got != tc.want {
				t.Errorf("the agent had %d writes when the upstream was read last, want %d", got, tc.want)
			}
			cc.endExchange()
		})
	}
}
