package scrub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

type failingBody struct {
	data []byte
	err  error
}

func (f *failingBody) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func (f *failingBody) Close() error { return nil }

// TestResponseTruncated checks that a body cut short surfaces as a Read
// error, never as a clean end.
func TestResponseTruncated(t *testing.T) {
	boom := errors.New("connection reset")
	full := []byte(strings.Repeat("a", 100) + testKey + "tail")
	gz := encode(t, "gzip", bytes.Repeat(full, 1000))
	tests := []struct {
		name     string
		header   http.Header
		body     io.ReadCloser
		length   int64
		wantErr  error
		wantBody string
	}{
		{"shorter than small length", http.Header{"Content-Length": {"500"}}, io.NopCloser(bytes.NewReader(full)), 500, io.ErrUnexpectedEOF, strings.Repeat("a", 100) + "<<STRIPE>>tail"},
		{"small length then reset", http.Header{"Content-Length": {"500"}}, &failingBody{data: full[:110], err: boom}, 500, boom, strings.Repeat("a", 100)},
		{"streamed then reset", http.Header{}, &failingBody{data: full, err: boom}, -1, boom, strings.Repeat("a", 100) + "<<STRIPE>>tail"},
		{"gzip cut short", http.Header{"Content-Encoding": {"gzip"}}, &failingBody{data: gz[:len(gz)/2], err: io.ErrUnexpectedEOF}, -1, io.ErrUnexpectedEOF, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 200, Header: tc.header, ContentLength: tc.length, Body: tc.body}
			b, err := testReplacer().Response(resp, http.MethodGet)
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			var stats BodyStats
			b.OnDone(func(s BodyStats) { stats = s })
			got, err := io.ReadAll(b)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
			if tc.wantBody != "" && string(got) != tc.wantBody {
				t.Errorf("body: %s", describeDiff(got, []byte(tc.wantBody)))
			}
			if strings.Contains(string(got), testKey) {
				t.Errorf("output contains secret STRIPE at offset %d", strings.Index(string(got), testKey))
			}
			if stats.Complete || !errors.Is(stats.Err, tc.wantErr) || stats.Bytes != int64(len(got)) {
				t.Errorf("stats: got complete %v, err %v, bytes %d, want false, %v, %d", stats.Complete, stats.Err, stats.Bytes, tc.wantErr, len(got))
			}
			if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
				t.Errorf("got length %d, header %q, want -1 and none", resp.ContentLength, resp.Header.Get("Content-Length"))
			}
		})
	}
}

type countingCloser struct {
	io.Reader
	closes atomic.Int32
}

func (c *countingCloser) Close() error { c.closes.Add(1); return nil }

func TestBodyOnDone(t *testing.T) {
	body := []byte("x " + testKey + " y")
	tests := []struct {
		name      string
		readAll   bool
		closeFrom int // number of Close calls
		want      BodyStats
	}{
		{"read to eof then close twice", true, 2, BodyStats{Scrubbed: 2, Bytes: 14, Complete: true}},
		{"closed early", false, 3, BodyStats{Scrubbed: 1, Bytes: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &countingCloser{Reader: bytes.NewReader(body)}
			resp := &http.Response{StatusCode: 200, Header: http.Header{"X-K": {testKey}}, ContentLength: -1, Body: up}
			b, err := testReplacer().Response(resp, http.MethodGet)
			if err != nil {
				t.Fatal(err)
			}
			var calls []BodyStats
			b.OnDone(func(s BodyStats) { calls = append(calls, s) })
			if tc.readAll {
				if _, err := io.ReadAll(b); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.closeFrom {
				if err := b.Close(); err != nil {
					t.Errorf("Close: got %v, want nil", err)
				}
			}
			if len(calls) != 1 || calls[0] != tc.want {
				t.Errorf("got calls %+v, want one %+v", calls, tc.want)
			}
			if up.closes.Load() != 1 {
				t.Errorf("upstream closes: got %d, want 1", up.closes.Load())
			}
			var late []BodyStats
			b.OnDone(func(s BodyStats) { late = append(late, s) })
			if len(late) != 1 || late[0] != tc.want {
				t.Errorf("registered after the end: got %+v, want one %+v", late, tc.want)
			}
		})
	}
}

// TestBodyCloseInCallback checks that the callback may close the body.
func TestBodyCloseInCallback(t *testing.T) {
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1, Body: io.NopCloser(strings.NewReader("abc"))}
	b, err := testReplacer().Response(resp, http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	b.OnDone(func(BodyStats) { calls++; _ = b.Close() })
	if _, err := io.ReadAll(b); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("got %d calls, want 1", calls)
	}
}

// TestResponseOverHTTP runs a real server that streams gzip-compressed
// server-sent events with a trailer, and checks that events arrive one at a
// time, scrubbed, and that the trailer is scrubbed at the end.
func TestResponseOverHTTP(t *testing.T) {
	next := make(chan bool)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Trailer", "X-Sig")
		w.Header().Set("Location", "/x?k="+testKey)
		zw := gzip.NewWriter(w)
		for i := range 3 {
			<-next
			fmt.Fprintf(zw, "data: %d %s\n\n", i, testKey)
			_ = zw.Flush()
			w.(http.Flusher).Flush()
		}
		_ = zw.Close()
		w.Header().Set("X-Sig", "sig-"+testKey)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	go func() { next <- true }()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := testReplacer().Response(resp, http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	buf := make([]byte, 4096)
	for i := range 3 {
		if i > 0 {
			next <- true
		}
		var got []byte
		want := "data: " + strconv.Itoa(i) + " <<STRIPE>>\n\n"
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < len(want) && time.Now().Before(deadline) {
			n, err := b.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("event %d: got %v, want nil", i, err)
			}
		}
		if string(got) != want {
			t.Fatalf("event %d: got %s, want %q", i, redact(string(got), testKey), want)
		}
	}
	if rest, err := io.ReadAll(b); len(rest) != 0 || err != nil {
		t.Errorf("after the events: got %s, %v, want nothing, nil", redact(string(rest), testKey), err)
	}
	if got := resp.Trailer.Get("X-Sig"); got != "sig-<<STRIPE>>" {
		t.Errorf("trailer: got %s, want %q", redact(got, testKey), "sig-<<STRIPE>>")
	}
	if got := resp.Header.Get("Location"); got != "/x?k=<<STRIPE>>" {
		t.Errorf("Location: got %s, want %q", redact(got, testKey), "/x?k=<<STRIPE>>")
	}
	if got, want := b.Scrubbed(), 5; got != want {
		t.Errorf("Scrubbed: got %d, want %d", got, want)
	}
}

// TestBodyCloseDuringRead closes a gzip body while a Read waits on a
// stalled upstream; the Read must end with an error and the callback run
// once.
func TestBodyCloseDuringRead(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		fmt.Fprintf(zw, "start %s\n", testKey)
		_ = zw.Flush()
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := testReplacer().Response(resp, http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	b.OnDone(func(BodyStats) { calls.Add(1) })
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(b)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("got nil, want a read error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after Close")
	}
	if calls.Load() != 1 {
		t.Errorf("got %d callbacks, want 1", calls.Load())
	}
}
