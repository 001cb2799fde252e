package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"syscall"
)

// Logs never hold bytes a client or an upstream sent: a secret injected
// into a request can come back in any of them (an upstream echoing it in a
// malformed status line, header, chunk or trailer), and an agent's own
// token can be in a malformed request line. Go's error texts quote such
// bytes ("malformed HTTP status code %q", "Unsolicited response received
// on idle HTTP channel starting with %q"), so what keyhole logs of them is
// a fixed class, chosen below, never the text.

// describeUpstreamError returns the fixed class of an upstream failure,
// for the operational log and the audit record's error.
func describeUpstreamError(err error) string {
	var (
		dnsErr *net.DNSError
		pe     *privateAddressError
	)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errUpstreamIdle):
		return errUpstreamIdle.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.As(err, &dnsErr):
		return "DNS lookup failed"
	case errors.As(err, &pe):
		return "private address"
	case isTLSError(err):
		return "TLS handshake or verification failed"
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the upstream closed the connection early"
	}
	// The text is only matched, never repeated: an attacker who shapes it
	// can at most pick the wrong class.
	msg := strings.ToLower(err.Error())
	for _, c := range protocolClasses {
		if strings.Contains(msg, c.match) {
			return c.class
		}
	}
	return "malformed or broken response from the upstream"
}

// protocolClasses map the fixed part of net/http's and the decoders'
// error texts to what keyhole logs; the first match wins.
var protocolClasses = []struct{ match, class string }{
	{"status code", "malformed status line"},
	{"malformed http response", "malformed status line"},
	{"content-length", "malformed Content-Length"},
	{"transfer encoding", "malformed Transfer-Encoding"},
	{"transfer-encoding", "malformed Transfer-Encoding"},
	{"chunk", "malformed chunked encoding"},
	{"mime header", "malformed header or trailer line"},
	{"header", "malformed header or trailer line"},
	{"gzip", "undecodable content encoding"},
	{"flate", "undecodable content encoding"},
	{"brotli", "undecodable content encoding"},
	{"zstd", "undecodable content encoding"},
}

// StdLogWriter returns a writer for Go's standard log package
// (log.SetOutput) and http.Server's ErrorLog, which net/http writes to with
// texts that quote bytes from peers. Each message becomes a fixed sentence
// on l, never its text: an upstream that sends bytes past its declared
// length is a warning, every other message is debug.
func StdLogWriter(l *slog.Logger) io.Writer { return stdLog{l} }

// NewStdLogger returns a standard logger that writes through StdLogWriter.
func NewStdLogger(l *slog.Logger) *log.Logger { return log.New(StdLogWriter(l), "", 0) }

type stdLog struct{ log *slog.Logger }

func (s stdLog) Write(p []byte) (int, error) {
	level, msg := stdLogClass(p)
	s.log.Log(context.Background(), level, msg, "component", "net/http")
	return len(p), nil
}

// stdLogClass returns the level and fixed sentence of a message net/http
// wrote to a standard logger.
func stdLogClass(p []byte) (slog.Level, string) {
	switch {
	case bytes.Contains(p, []byte("Unsolicited response")):
		return slog.LevelWarn, "an upstream sent bytes after its response ended (past its declared length, or unasked); the connection was closed"
	case bytes.Contains(p, []byte("TLS handshake error")):
		return slog.LevelDebug, "a TLS handshake failed"
	case bytes.Contains(p, []byte("panic serving")):
		return slog.LevelError, "a request handler panicked"
	case bytes.Contains(p, []byte("Accept error")):
		return slog.LevelDebug, "accepting a connection failed; retrying"
	}
	return slog.LevelDebug, "a net/http message was withheld: it can quote bytes a client or an upstream sent"
}

// fixedFormat returns a goproxy log format without its verbs, and without
// the session number goproxy puts first: its arguments (errors quoting
// request lines, URLs with query strings, hosts) are never logged.
func fixedFormat(format string) string {
	format = strings.TrimPrefix(format, "[%03d] ")
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		// Skip flags, width and precision up to the verb letter.
		for i++; i < len(format) && strings.IndexByte("+-# 0123456789.*[]", format[i]) >= 0; i++ {
		}
		b.WriteString("…")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
