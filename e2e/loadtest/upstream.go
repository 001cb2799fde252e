package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// upstreamHost is the name the upstream's certificate holds. Clients ask
// the proxies for it; keyhole's rules and the baseline's dialer pin it to
// the upstream's 127.0.0.1 port.
const upstreamHost = "upstream.test"

// Sizes of the upstream's fixed bodies, and the shape of its event stream.
const (
	smallSize   = 1 << 10
	largeSize   = 1 << 20
	sseEvents   = 20
	sseInterval = 50 * time.Millisecond
)

// upstream is the in-process HTTPS origin that every scenario reaches. It
// serves HTTP/1.1 only (like keyhole toward agents) with keep-alive, and
// counts the TCP connections it accepts so the tool can tell whether a
// proxy reuses its upstream connections.
type upstream struct {
	srv  *http.Server
	addr string // 127.0.0.1:port
	// addr443 is the loopback address where the upstream also serves on
	// port 443, for Squid; empty until listen443.
	addr443 string
	conns   atomic.Int64
	errc    chan error
}

// startUpstream serves on a fresh 127.0.0.1 port with cert.
func startUpstream(cert tls.Certificate) (*upstream, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start upstream: %w", err)
	}
	u := &upstream{addr: ln.Addr().String(), errc: make(chan error, 1)}
	small, large := body(smallSize), body(largeSize)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /small", fixed(small))
	mux.HandleFunc("GET /large", fixed(large))
	mux.HandleFunc("GET /sse", events)
	u.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// A non-nil empty map turns HTTP/2 off: both proxies speak
		// HTTP/1.1 upstream, and so does every client here.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				u.conns.Add(1)
			}
		},
	}
	go func() {
		if err := u.srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			u.errc <- err
		}
	}()
	return u, nil
}

// listen443 makes the upstream also serve on port 443 of a loopback
// address, for Squid (squid.go), and returns the address. It tries a few
// addresses of 127.0.0.0/8 other than 127.0.0.1, where port 443 may be
// taken; binding port 443 needs root (or CAP_NET_BIND_SERVICE). Serving
// once is enough for a run: later calls return the same address.
func (u *upstream) listen443() (string, error) {
	if u.addr443 != "" {
		return u.addr443, nil
	}
	var last error
	for _, ip := range []string{"127.0.44.3", "127.0.44.4", "127.0.44.5"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "443"))
		if err != nil {
			last = err
			continue
		}
		go func() {
			if err := u.srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
				select {
				case u.errc <- err:
				default:
				}
			}
		}()
		u.addr443 = ip
		return ip, nil
	}
	return "", fmt.Errorf("upstream on port 443: %w", last)
}

// Conns returns how many TCP connections the upstream has accepted.
func (u *upstream) Conns() int64 { return u.conns.Load() }

// Close stops the upstream and reports whether it had failed.
func (u *upstream) Close() error {
	_ = u.srv.Close()
	select {
	case err := <-u.errc:
		return fmt.Errorf("upstream: %w", err)
	default:
		return nil
	}
}

// fixed serves b with its Content-Length.
func fixed(b []byte) http.HandlerFunc {
	n := strconv.Itoa(len(b))
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{n}
		_, _ = w.Write(b)
	}
}

// events sends sseEvents server-sent events sseInterval apart, each
// carrying the wall-clock time (UnixNano) at which it was written, so the
// client can compute the delay from the upstream's write to its read.
func events(w http.ResponseWriter, r *http.Request) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	tick := time.NewTicker(sseInterval)
	defer tick.Stop()
	buf := make([]byte, 0, 64)
	for i := range sseEvents {
		if i > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
		buf = append(buf[:0], "id: "...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, "\ndata: "...)
		buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
		buf = append(buf, "\n\n"...)
		if _, err := w.Write(buf); err != nil {
			return
		}
		f.Flush()
	}
}

// body returns n bytes of JSON-lines text, like an API's list response.
// It is deterministic and holds no secret value: every byte is from the
// line template and decimal digits.
func body(n int) []byte {
	b := make([]byte, 0, n+128)
	for i := 0; len(b) < n; i++ {
		b = append(b, `{"id":"ch_`...)
		b = strconv.AppendInt(b, int64(100000+i), 10)
		b = append(b, `","object":"charge","amount":`...)
		b = strconv.AppendInt(b, int64(i%9000+100), 10)
		b = append(b, `,"currency":"usd","status":"succeeded"}`+"\n"...)
	}
	return b[:n]
}
