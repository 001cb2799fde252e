package proxy

import (
	"sync"
	"time"

	"keyhole/tokens"
)

// tokenCheckInterval is how often open connections are checked against
// their minted token's expiry and the revocation list (which
// tokens.Revocations.Watch re-reads every 250 ms): a revoked or expired
// token ends what it opened within about half a second.
const tokenCheckInterval = 200 * time.Millisecond

// tokenWatch ends the connections a minted token opened once the token is
// revoked or expires: the tunnels (with every stream and WebSocket inside)
// and the plain-HTTP connections that are relaying a response or an
// upgraded connection. Without it only the next request would be refused,
// and a stream or WebSocket opened before could run on for hours. One
// goroutine checks every watched connection; it runs only while there are
// some.
type tokenWatch struct {
	mu      sync.Mutex
	conns   map[*clientConn]watchedToken
	running bool
}

// watchedToken is what a watched connection was opened with, copied: a
// tunnel's caller changes when a reload makes it verify again.
type watchedToken struct {
	grant          *tokens.Grant
	agent, tokenID string
}

// watchToken closes cc when c's minted token is revoked or expires, until
// stop is called or cc closes. It does nothing for a caller without a
// minted token or a connection that is not tracked.
func (p *Proxy) watchToken(cc *clientConn, c *caller) (stop func()) {
	if cc == nil || c == nil || c.grant == nil || p.tokens == nil {
		return func() {}
	}
	w := &p.tokenWatch
	wt := watchedToken{grant: c.grant, agent: c.Agent, tokenID: c.tokenID}
	w.mu.Lock()
	if w.conns == nil {
		w.conns = make(map[*clientConn]watchedToken)
	}
	w.conns[cc] = wt
	if !w.running {
		w.running = true
		go p.checkTokens()
	}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		if w.conns[cc].grant == wt.grant {
			delete(w.conns, cc)
		}
		w.mu.Unlock()
	}
}

// checkTokens runs while connections are watched.
func (p *Proxy) checkTokens() {
	w := &p.tokenWatch
	tick := time.NewTicker(tokenCheckInterval)
	defer tick.Stop()
	var ended []*clientConn
	for range tick.C {
		now := time.Now()
		ended = ended[:0]
		w.mu.Lock()
		for cc, wt := range w.conns {
			if cc.isClosed() {
				delete(w.conns, cc)
				continue
			}
			if why := p.tokenEnded(wt.grant, now); why != "" {
				delete(w.conns, cc)
				ended = append(ended, cc)
				p.log.Info("connection closed: its token "+why, "agent", wt.agent, "token_id", wt.tokenID)
			}
		}
		if len(w.conns) == 0 {
			w.running = false
			w.mu.Unlock()
			closeEach(ended)
			return
		}
		w.mu.Unlock()
		closeEach(ended)
	}
}

// tokenEnded says why g may no longer be used at now ("has expired",
// "was revoked", or the shared revocations are stale), or returns "" while
// it may.
func (p *Proxy) tokenEnded(g *tokens.Grant, now time.Time) string {
	if !now.Before(g.Expires) {
		return "has expired"
	}
	if p.tokens.Revoked.Revoked(g) { // nil-safe
		return "was revoked"
	}
	if p.tokens.Revoked.Unavailable() { // nil-safe
		return "cannot be checked: the shared state is unavailable"
	}
	return ""
}

func closeEach(cs []*clientConn) {
	for _, cc := range cs {
		_ = cc.Close()
	}
}
