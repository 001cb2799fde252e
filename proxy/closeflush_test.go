package proxy

import (
	"testing"
	"time"
)

// deadlineConn records writes and write deadlines in order, and fails
// writes made after a deadline that has passed, as a TCP connection does.
type deadlineConn struct {
	recordingConn
	events []string
	by     time.Time
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if !c.by.IsZero() && time.Now().After(c.by) {
		c.events = append(c.events, "write after deadline")
		return 0, errDeadlinePassed
	}
	c.events = append(c.events, "write "+string(p))
	return len(p), nil
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.by = t
	c.events = append(c.events, "deadline")
	return nil
}

func (c *deadlineConn) SetDeadline(t time.Time) error { return c.SetWriteDeadline(t) }

type deadlinePassed struct{}

func (deadlinePassed) Error() string { return "deadline passed" }

var errDeadlinePassed error = deadlinePassed{}

// TestHeldWritesSurviveAPastDeadline replays what tls.Conn.Close does to
// a tunnel's connection: a deadline 5 s ahead, the close_notify alert
// (a small write, held back), then a deadline in the past. Every held
// write must leave before the past deadline, so the end of the response
// and the alert reach the client.
func TestHeldWritesSurviveAPastDeadline(t *testing.T) {
	dc := &deadlineConn{}
	cc := &clientConn{Conn: dc, owner: newConns()}
	cc.owner.add(cc)
	cc.hijacked(time.Minute)
	cc.coalesceWrites(true)
	cc.startExchange()
	_, _ = cc.Write([]byte("0\r\n\r\n")) // the last chunk, held back
	_ = cc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = cc.Write([]byte("alert")) // close_notify, held back
	_ = cc.SetWriteDeadline(time.Now().Add(-time.Second))
	_ = cc.Close()
	// The first deadline is the write timeout clientConn sets itself.
	want := []string{"deadline", "deadline", "write 0\r\n\r\n", "write alert", "deadline"}
	if len(dc.events) != len(want) {
		t.Fatalf("got %q, want %q", dc.events, want)
	}
	for i := range want {
		if dc.events[i] != want[i] {
			t.Fatalf("got %q, want %q", dc.events, want)
		}
	}
}
