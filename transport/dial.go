package transport

// Dials to one host are coordinated so that a burst of requests to an
// upstream that speaks HTTP/2 shares one connection, as net/http's
// transport does, rather than dialing one each: while the protocol of a
// host is not known to be HTTP/1.1, a request that finds no pooled
// connection and a dial in flight waits for that dial, then looks in the
// pools again. Once a host has brought HTTP/1.1, which cannot be shared,
// its requests dial in parallel.

// maxKnownH1 bounds the hosts remembered as speaking HTTP/1.1; beyond it
// the memory starts over.
const maxKnownH1 = 4096

// dialCall is a dial in flight; done closes when it ends.
type dialCall struct{ done chan struct{} }

// inFlight returns the dial in flight to addr that a request should wait
// for, or nil.
func (t *Transport) inFlight(addr string) *dialCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h1[addr] {
		return nil
	}
	return t.dialing[addr]
}

// lead registers a dial to addr that others may wait for, and returns it;
// nil when addr is known to speak HTTP/1.1 or another dial leads already.
func (t *Transport) lead(addr string) *dialCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h1[addr] || t.dialing[addr] != nil {
		return nil
	}
	dc := &dialCall{done: make(chan struct{})}
	t.dialing[addr] = dc
	return dc
}

// endDial ends the dial dc led, remembering whether it brought HTTP/1.1.
func (t *Transport) endDial(addr string, dc *dialCall, h1 bool) {
	t.mu.Lock()
	delete(t.dialing, addr)
	if h1 {
		if len(t.h1) >= maxKnownH1 {
			clear(t.h1)
		}
		t.h1[addr] = true
	} else {
		delete(t.h1, addr)
	}
	t.mu.Unlock()
	close(dc.done)
}
