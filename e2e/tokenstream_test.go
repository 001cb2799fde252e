package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const streamRules = `
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [streams.test, plainstreams.test]
    allow_plaintext: true
agents:
  billing:
    token: env:BILLING_TOKEN
    secrets: [STRIPE]
resolve:
  streams.test: %s
  plainstreams.test: %s
`

// streamHandler serves /sse (an event every 100 ms) and /ws (a WebSocket
// message every 100 ms), for 60 s at most.
func streamHandler(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	switch r.URL.Path {
	case "/sse":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	case "/ws":
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for i := 0; ; i++ {
			if err := c.Write(ctx, websocket.MessageText, fmt.Appendf(nil, "%d", i)); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

// openStream opens url (an SSE stream or a WebSocket) through k with the
// agent's token, waits for its first message, and returns a channel
// closed when the stream ends.
func openStream(t *testing.T, k *keyhole, url, token string) <-chan struct{} {
	t.Helper()
	hc := k.GoClient(t, "billing", token)
	hc.Timeout = 0
	ended := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if url[len(url)-3:] == "/ws" {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc,
			HTTPHeader: http.Header{"Authorization": {"Bearer <<STRIPE>>"}}})
		if err != nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		if _, _, err := conn.Read(ctx); err != nil {
			t.Fatalf("first message: %v", err)
		}
		go func() {
			defer close(ended)
			for {
				if _, _, err := conn.Read(ctx); err != nil {
					return
				}
			}
		}()
		return ended
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer <<STRIPE>>")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("first event: %v", err)
	}
	go func() {
		defer close(ended)
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	return ended
}

// TestRevokedTokenEndsOpenStreams checks that revoking a minted token, or
// its expiry, ends the SSE streams and WebSockets it opened, in tunnels
// and over plain HTTP, within about a second: not only the next request.
func TestRevokedTokenEndsOpenStreams(t *testing.T) {
	tlsUp := newUpstream(t, []string{"streams.test"}, http.HandlerFunc(streamHandler))
	plainUp := newPlainUpstream(t, http.HandlerFunc(streamHandler))
	k := startKeyhole(t, fmt.Sprintf(streamRules, tlsUp.Addr(), plainUp.Addr()), "BILLING_TOKEN="+billingToken)
	// Generous for a loaded machine; the stream would otherwise run 60 s.
	const bound = 4 * time.Second
	urls := []string{"https://streams.test/sse", "https://streams.test/ws", "http://plainstreams.test/sse", "ws://plainstreams.test/ws"}
	for i, url := range urls {
		t.Run("revoke "+url, func(t *testing.T) {
			id := fmt.Sprintf("stream-job-%d", i)
			token, _ := k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", id)
			ended := openStream(t, k, url, token)
			start := time.Now()
			k.token(t, "revoke", id)
			select {
			case <-ended:
				t.Logf("ended %v after the revoke command returned", time.Since(start).Round(time.Millisecond))
			case <-time.After(bound):
				t.Fatalf("the stream still runs %v after its token was revoked", bound)
			}
		})
	}
	t.Run("expiry", func(t *testing.T) {
		token, _ := k.token(t, "mint", "--agent", "billing", "--ttl", "3s")
		start := time.Now()
		ended := openStream(t, k, "https://streams.test/sse", token)
		select {
		case <-ended:
			t.Logf("ended %v after minting a 3 s token", time.Since(start).Round(time.Millisecond))
		case <-time.After(3*time.Second + bound):
			t.Fatalf("the stream still runs %v after its token was minted with a 3 s TTL", 3*time.Second+bound)
		}
	})
	t.Run("other tokens' streams go on", func(t *testing.T) {
		token, _ := k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", "kept-job")
		ended := openStream(t, k, "https://streams.test/sse", token)
		k.token(t, "mint", "--agent", "billing", "--ttl", "10m", "--id", "gone-job")
		k.token(t, "revoke", "gone-job")
		select {
		case <-ended:
			t.Fatal("revoking another token ended this stream")
		case <-time.After(1500 * time.Millisecond):
		}
	})
}
