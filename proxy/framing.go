package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// h1Framing is the per-connection state that exists because an HTTP/1.1
// tunnel carries one exchange at a time on a byte stream that goproxy
// parses without bounds: the header limit and header timeout counted
// between exchanges, the coalescing of small writes into larger TLS
// records, and the single timer that watches the current exchange's
// upstream body. An HTTP/2 tunnel frames requests itself (the http2
// server bounds header lists, and its streams run concurrently), so it
// leaves all of this off: headerLimit and headerTimeout stay 0, coalesce
// false, and its exchanges get no *clientConn, so each upstream body has a
// timer of its own (see newIdleBody).
//
// One piece is shared: phase also bounds the inner TLS handshake of every
// tunnel, h2 ones included (see bound and unbound).
//
// It is embedded in clientConn, whose methods in conn.go, coalesce.go and
// idlebody.go use it; its zero value is "off".
type h1Framing struct {
	// Inside a tunnel goproxy reads each request's header with
	// http.ReadRequest, which has no bound: headerLimit (0: none) bounds
	// the bytes read between two exchanges (see startExchange), where only
	// a header is read. Counted below TLS, it is exact to within the
	// slack the caller adds.
	headerLimit  atomic.Int64
	betweenBytes atomic.Int64 // read since the tunnel opened or the last exchange ended
	inExchange   atomic.Bool
	overLimit    atomic.Bool
	onOverLimit  func() // set before the tunnel starts

	// The per-operation deadlines cannot bound a phase that must end in
	// time: a peer that trickles one byte at a time moves them forever.
	// phase closes the connection when the inner TLS handshake, or an
	// inner request's header, takes longer than allowed (see bound);
	// headerTimeout (0: no such bound) is the time a header may take,
	// from its first byte; headerArmed says a header's bound has begun.
	// Between exchanges the bound starts lazily: a header's first bytes
	// only note when they came (headerStart), and phase is armed, for
	// what is left, by the next read the header needs. A header that
	// arrives in one read, as keep-alive requests do, costs no timer.
	phase         atomic.Pointer[time.Timer]
	headerTimeout atomic.Int64
	headerArmed   atomic.Bool
	headerStart   atomic.Int64 // Unix nanoseconds; 0: no lazy bound pending

	// Inside a tunnel each write is a TLS record and, sent at once, a
	// syscall. coalesce holds writes in pending (see coalescedWrite) and
	// sends them with the next large write, in one writev; pending is
	// flushed before any read from the client, at the end of each
	// response, on Close, and before or soon after a read of the upstream
	// body that waits (see beforeUpstreamRead), so nothing waits on it.
	coalesce atomic.Bool
	wmu      sync.Mutex
	pending  *[]byte // from a pending pool; nil when nothing is held
	werr     error   // the error of a flush, returned by every later write
	// flushTimer sends held writes when a read of a bulk upstream body
	// waits (see beforeUpstreamRead); both fields belong to the
	// goroutine relaying the body.
	flushTimer *time.Timer
	timerArmed bool

	// bodyTimer watches the upstream body of the current exchange (see
	// watchBody); it is created by the goroutine relaying the bodies.
	bodyTimer *time.Timer
	watched   atomic.Pointer[idleBody]
}
