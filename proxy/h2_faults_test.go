package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 opens an h2 tunnel to api.example.test through tp and returns a
// framer on it, after the client preface and an empty SETTINGS frame.
func rawH2(t *testing.T, tp *testProxy) (*tls.Conn, *http2.Framer) {
	t.Helper()
	tc := dialTunnel(t, tp, "api.example.test:443", []string{"h2"})
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(tc, tc)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return tc, fr
}

// headerBlock HPACK-encodes a request for path with extra fields.
func headerBlock(path string, extra ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	fields := []string{":method", "GET", ":scheme", "https", ":authority", "api.example.test", ":path", path}
	for i := 0; i+1 < len(fields); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return buf.Bytes()
}

// drain reads frames until the connection ends, or stream 1 gets its
// header, and returns the last GOAWAY and stream 1's :status, if any.
func drain(fr *http2.Framer) (goaway *http2.GoAwayFrame, status1 string) {
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return goaway, status1
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			g := *f
			goaway = &g
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				return goaway, f.PseudoValue("status")
			}
		}
	}
}

// assertHealthy checks that tp serves a fresh h2 tunnel and, in time, has
// no request in flight and no tunnel left open.
func assertHealthy(t *testing.T, tp *testProxy) {
	t.Helper()
	cc := dialH2(t, tp, "api.example.test:443")
	if resp, _ := h2Get(t, cc, "https://api.example.test/healthy"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a fresh tunnel: got %d, want 200", resp.StatusCode)
	}
	cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tunnels, inflight := tp.Stats()
		if tunnels == 0 && inflight == 0 {
			return
		}
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1) // functions only, no values
			t.Fatalf("got %d tunnels and %d requests in flight, want 0 and 0; goroutines:\n%s", tunnels, inflight, stacks.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settleGoroutines waits for the goroutine count to come down to want,
// calling tidy before each count.
func settleGoroutines(want int, tidy func()) int {
	deadline := time.Now().Add(20 * time.Second)
	for {
		tidy()
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowUpstream answers /slow only when the request is canceled (or after
// 10 s), anything else at once.
func slowUpstream(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/slow" || r.URL.Path == "/hang" {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func TestH2ClientResetsStreamsInALoop(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, slowUpstream)
	tp := startKeyProxy(t, up, nil, Config{})
	assertHealthy(t, tp) // warm: the leaf, the upstream pool
	base := runtime.NumGoroutine()
	tc, fr := rawH2(t, tp)
	done := make(chan struct{})
	go func() { drain(fr); close(done) }()
	block := headerBlock("/slow", "authorization", "Bearer <<KEY>>")
	for i := range 2000 {
		id := uint32(2*i + 1)
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}) != nil {
			break // keyhole may end a connection that does this
		}
		if fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
	}
	tc.Close()
	<-done
	assertHealthy(t, tp)
	// Idle upstream keep-alives (and their server side) are a pool, not
	// a leak, and dials begun for reset streams may still join it: close
	// them before each count.
	tidy := func() {
		tp.upstreams.closeIdle()
		up.CloseClientConnections()
	}
	// 2000 streams: a goroutine left per stream, or per upstream request,
	// would be thousands; 20 is room for a slow machine's stragglers.
	if n := settleGoroutines(base+20, tidy); n > base+20 {
		t.Fatalf("goroutines after the resets: got %d, want at most %d", n, base+20)
	}
}

func TestH2UpstreamThatHangsTimesOutItsStreamOnly(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, slowUpstream)
	tp := startKeyProxy(t, up, nil, Config{UpstreamHeaderTimeout: time.Second})
	cc := dialH2(t, tp, "api.example.test:443")
	hung := make(chan *http.Response, 1)
	go func() {
		resp, _ := h2Get(t, cc, "https://api.example.test/hang", "Authorization", "Bearer <<KEY>>")
		hung <- resp
	}()
	for range 10 {
		if resp, body := h2Get(t, cc, "https://api.example.test/fast", "Authorization", "Bearer <<KEY>>"); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("a stream beside the hung one: got %d %q, want 200 ok", resp.StatusCode, body)
		}
	}
	select {
	case resp := <-hung:
		if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Keyhole-Reason") != "upstream_timeout" {
			t.Fatalf("the hung stream: got %d %q, want 502 upstream_timeout", resp.StatusCode, resp.Header.Get("X-Keyhole-Reason"))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the hung stream got no answer")
	}
	if resp, _ := h2Get(t, cc, "https://api.example.test/after"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the tunnel after the timeout: got %d, want 200", resp.StatusCode)
	}
}

// goawayUpstream speaks HTTP/2 with a framer: /goaway gets its header and
// part of its body, then GOAWAY and the connection closes; anything else
// is answered in full.
func goawayUpstream(srv *http.Server, c *tls.Conn, _ http.Handler) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	_ = fr.WriteSettings()
	var mu sync.Mutex
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			var buf bytes.Buffer
			_ = hpack.NewEncoder(&buf).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			mu.Lock()
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: buf.Bytes(), EndHeaders: true})
			if f.PseudoValue("path") == "/goaway" {
				_ = fr.WriteData(f.StreamID, false, []byte("partial "))
				_ = fr.WriteGoAway(f.StreamID, http2.ErrCodeInternal, nil)
				mu.Unlock()
				return
			}
			_ = fr.WriteData(f.StreamID, true, []byte("ok"))
			mu.Unlock()
		}
	}
}

func TestH2UpstreamGoawayMidStream(t *testing.T) {
	up := startUpstream(t, []string{"api.example.test"}, nil, func(s *httptest.Server) {
		s.EnableHTTP2 = true
		s.Config.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){"h2": goawayUpstream}
	})
	tp := startKeyProxy(t, up, nil, Config{})
	cc := dialH2(t, tp, "api.example.test:443")
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.test/goaway", nil)
	req.Header.Set("Authorization", "Bearer <<KEY>>")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a body the upstream cut short with GOAWAY read as complete")
	}
	if resp, body := h2Get(t, cc, "https://api.example.test/next", "Authorization", "Bearer <<KEY>>"); resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("the next stream on the same tunnel: got %d %q, want 200 ok", resp.StatusCode, body)
	}
	if !strings.Contains(tp.auditBuf.String(), `"error":"upstream body`) {
		t.Fatal("no audit record names the upstream body's failure")
	}
}

func TestH2WindowUpdateFlood(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, slowUpstream)
	tp := startKeyProxy(t, up, nil, Config{})
	tc, fr := rawH2(t, tp)
	// Many small updates, which a server need not answer, then two that
	// overflow the window: a flow-control error (RFC 9113 §6.9.1).
	for range 20000 {
		if fr.WriteWindowUpdate(0, 1) != nil {
			break
		}
	}
	_ = fr.WriteWindowUpdate(0, 1<<31-1)
	_ = fr.WriteWindowUpdate(0, 1<<31-1)
	_ = tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	goaway, _ := drain(fr)
	if goaway == nil || goaway.ErrCode != http2.ErrCodeFlowControl {
		t.Fatalf("got GOAWAY %v, want one with FLOW_CONTROL_ERROR", goaway)
	}
	tc.Close()
	assertHealthy(t, tp)
}

func TestH2OversizedHeaders(t *testing.T) {
	up := startTestUpstream(t, []string{"api.example.test"}, nil)
	tp := startKeyProxy(t, up, nil, Config{MaxHeaderBytes: 16 << 10})
	big := strings.Repeat("a", 60<<10)
	cases := []struct {
		name  string
		write func(fr *http2.Framer) error
	}{
		{"one header over the limit in CONTINUATION frames", func(fr *http2.Framer) error {
			block := headerBlock("/big", "x-big", big)
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:16<<10], EndStream: true}); err != nil {
				return err
			}
			for rest := block[16<<10:]; len(rest) > 0; {
				n := min(len(rest), 16<<10)
				if err := fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
					return err
				}
				rest = rest[n:]
			}
			return nil
		}},
		{"CONTINUATION frames that never end", func(fr *http2.Framer) error {
			block := headerBlock("/flood")
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true}); err != nil {
				return err
			}
			frag := make([]byte, 16<<10) // zero bytes: indexed-field errors aside, never END_HEADERS
			for range 4096 {             // 64 MiB if keyhole read it all
				if err := fr.WriteContinuation(1, false, frag); err != nil {
					return err
				}
			}
			return errors.New("keyhole read 64 MiB of header block")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, fr := rawH2(t, tp)
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			result := make(chan [2]any, 1)
			go func() {
				g, s := drain(fr)
				result <- [2]any{g, s}
			}()
			if err := tc.write(fr); err != nil && strings.Contains(err.Error(), "64 MiB") {
				t.Fatal(err)
			}
			var r [2]any
			select {
			case r = <-result:
			case <-time.After(5 * time.Second):
				conn.Close()
				r = <-result
			}
			goaway, _ := r[0].(*http2.GoAwayFrame)
			status, _ := r[1].(string)
			if goaway == nil && status != "431" {
				t.Fatalf("got no GOAWAY and status %q, want a GOAWAY or 431", status)
			}
			conn.Close()
		})
	}
	if up.hits.Load() != 0 {
		t.Fatalf("upstream hits: got %d, want 0", up.hits.Load())
	}
	assertHealthy(t, tp)
}

// Shutdown sends h2 tunnels a GOAWAY: the stream in flight completes, and
// the agent opens no new stream on that connection.
func TestH2ShutdownSendsGoaway(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	up := startTestUpstream(t, []string{"api.example.test"}, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "ok")
	})
	tp := startKeyProxy(t, up, nil, Config{})
	cc := dialH2(t, tp, "api.example.test:443")
	got := make(chan string, 1)
	go func() {
		resp, body := h2Get(t, cc, "https://api.example.test/inflight", "Authorization", "Bearer <<KEY>>")
		got <- fmt.Sprint(resp.StatusCode, " ", body)
	}()
	<-arrived
	tp.shutdown()
	// While the stream is still in flight (so keyhole has not closed the
	// connection), the client must already have been told to go away.
	deadline := time.Now().Add(10 * time.Second)
	for cc.CanTakeNewRequest() {
		if time.Now().After(deadline) {
			t.Fatal("the h2 tunnel still takes new streams after shutdown began: no GOAWAY")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	select {
	case r := <-got:
		if r != "200 ok" {
			t.Fatalf("the stream in flight at shutdown: got %q, want 200 ok", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stream in flight at shutdown got no answer")
	}
}
