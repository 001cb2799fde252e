package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

const leakMark = "LEAK-7f3a-value"

// TestDescribeUpstreamErrorIsFixed checks that an upstream failure is
// logged as a fixed class, never with the bytes its error text quotes.
func TestDescribeUpstreamErrorIsFixed(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"status line", fmt.Errorf("net/http: HTTP/1.x transport connection broken: malformed HTTP status code %q", leakMark), "malformed status line"},
		{"header line", fmt.Errorf("net/http: HTTP/1.x transport connection broken: malformed MIME header line: %s", leakMark), "malformed header or trailer line"},
		{"trailer", fmt.Errorf("malformed MIME header: missing colon: %q", leakMark), "malformed header or trailer line"},
		{"content-length", fmt.Errorf("net/http: HTTP/1.x transport connection broken: bad Content-Length %q", leakMark), "malformed Content-Length"},
		{"transfer-encoding", fmt.Errorf(`net/http: HTTP/1.x transport connection broken: unsupported transfer encoding: %q`, leakMark), "malformed Transfer-Encoding"},
		{"chunk", fmt.Errorf("invalid byte in chunk length %s", leakMark), "malformed chunked encoding"},
		{"in a url error", &url.Error{Op: "Get", URL: "https://h/?k=" + leakMark, Err: fmt.Errorf("bad Content-Length %q", leakMark)}, "malformed Content-Length"},
		{"unknown text", errors.New(leakMark), "malformed or broken response from the upstream"},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "connection refused"},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, "connection reset"},
		{"eof", fmt.Errorf("wrapped %s: %w", leakMark, io.ErrUnexpectedEOF), "the upstream closed the connection early"},
		{"handshake", &handshakeError{fmt.Errorf("%s: %w", leakMark, io.EOF)}, "TLS handshake or verification failed"},
		{"idle", errUpstreamIdle, errUpstreamIdle.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describeUpstreamError(tc.err)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(got, leakMark) {
				t.Error("the description holds bytes of the error text")
			}
		})
	}
}

// TestStdLogWriterIsFixed checks that the standard logger's messages
// (net/http's) reach the operational log as fixed sentences.
func TestStdLogWriterIsFixed(t *testing.T) {
	var buf lockedBuffer
	buf.mu = make(chan struct{}, 1)
	l := NewStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("Unsolicited response received on idle HTTP channel starting with %q; err=%v", leakMark, nil)
	l.Printf("http: TLS handshake error from 127.0.0.1:1: %s", leakMark)
	l.Printf("anything else %s", leakMark)
	out := buf.String()
	if strings.Contains(out, leakMark) {
		t.Error("the log holds bytes of a message")
	}
	for _, want := range []string{"level=WARN msg=\"an upstream sent bytes after its response ended", "a TLS handshake failed", "a net/http message was withheld"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestFixedFormat(t *testing.T) {
	tests := map[string]string{
		"[%03d] WARN: Cannot read request from mitm'd client %v %v\n": "WARN: Cannot read request from mitm'd client … …",
		"[%03d] WARN: Cannot parse URL %s: %v":                        "WARN: Cannot parse URL …: …",
		"100%% done %-10.3q":                                          "100… done …",
	}
	for in, want := range tests {
		if got := fixedFormat(in); got != want {
			t.Errorf("fixedFormat(%q): got %q, want %q", in, got, want)
		}
	}
}
