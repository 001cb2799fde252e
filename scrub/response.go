package scrub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ErrUnscrubbableEncoding is returned by Response when the body is encoded
// in a way this package cannot decode (an unknown Content-Encoding, or an
// upgrade to a protocol other than WebSocket without extensions), so that
// a secret in it could not be found.
var ErrUnscrubbableEncoding = errors.New("scrub: response encoding cannot be scrubbed")

// smallBody is the largest identity-encoded body of known length that
// Response reads whole, so that the agent gets an exact Content-Length.
const smallBody = 64 << 10

// Response scrubs resp in place and returns its new body, which it also
// stores in resp.Body.
//
// The status line gets the standard reason phrase of its code (the
// upstream's own phrase is dropped, since it may echo a secret). Every
// header name and value is scrubbed at once, trailers when the upstream
// body ends; a header or trailer whose name holds a secret is removed,
// since a placeholder is not a valid field name. The body is decoded from
// its Content-Encoding (gzip, x-gzip, deflate, br, zstd, or several of
// them stacked) and scrubbed as it streams; Content-Encoding is then
// dropped, since the agent gets the body uncompressed. An identity-encoded
// body with a Content-Length of at most 64 KiB is read whole and gets its
// exact new Content-Length; any other body streams with ContentLength -1
// and no Content-Length header, so that the proxy sends it chunked.
// Responses to HEAD and with status 1xx, 204 or 304 have no body to scrub
// and keep their Content-Length; a 101 upgrade to WebSocket gets a body
// that scrubs server frames (see WebSocket).
//
// A body this package cannot decode (an unknown or too deeply stacked
// Content-Encoding, an upgrade to another protocol, a WebSocket extension)
// is an error wrapping ErrUnscrubbableEncoding, whether or not the request
// carried a secret: a value the upstream stored earlier may come back in
// it. resp.Body is then left as it was and the caller must not forward the
// response. With no patterns, bodies pass unchanged and stay compressed.
//
// An upstream read error, or a body shorter than its Content-Length, is
// returned by the body's Read, never turned into a clean end.
func (r *Replacer) Response(resp *http.Response, reqMethod string) (*Body, error) {
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	// Response.Write puts http.StatusText in place of an empty Status.
	resp.Status = ""
	n := r.scrubHeader(resp.Header, nil)
	if resp.Trailer == nil && (resp.ContentLength < 0 || resp.ProtoMajor == 2) {
		// Trailers the upstream did not announce: net/http's and x/net's
		// transports fill this map in place when the body ends, and the
		// body scrubs it then; left nil they would make a map of their own
		// that nothing scrubs.
		resp.Trailer = make(http.Header)
	}
	var dropped []string
	n += r.scrubHeader(resp.Trailer, &dropped)
	up := resp.Body
	if up == nil {
		up = http.NoBody
	}
	b := &Body{rep: r, trailer: resp.Trailer, dropped: dropped, src: up, up: up}
	b.headers.Store(int64(n))
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		if err := b.upgrade(resp); err != nil {
			return nil, err
		}
	case r.Len() == 0 || bodiless(resp, reqMethod):
	default:
		encs, bad := parseEncodings(resp.Header.Values("Content-Encoding"))
		if bad != "" {
			// The coding is not named: the error must not carry bytes
			// an upstream chose.
			return nil, fmt.Errorf("scrub response: content-encoding: %w", ErrUnscrubbableEncoding)
		}
		b.scrubBody(resp, up, encs)
	}
	resp.Body = b
	return b, nil
}

// scrubBody sets b up to read the decoded, scrubbed body of resp.
func (b *Body) scrubBody(resp *http.Response, up io.Reader, encs []string) {
	src := up
	if len(encs) == 0 && resp.ContentLength >= 0 && resp.ContentLength <= smallBody {
		pooled := getBodyBuf(int(resp.ContentLength) + 1)
		buf := *pooled
		n, err := io.ReadFull(up, buf)
		exact := err == io.ErrUnexpectedEOF && int64(n) == resp.ContentLength ||
			err == io.EOF && resp.ContentLength == 0
		if exact {
			b.scrubTrailer()
			out, c := b.rep.replaceIfAny(buf[:n])
			b.bodyCount = c
			if c > 0 {
				putBodyBuf(pooled) // out is a new slice
			} else {
				b.pooled = pooled // given back by Close
			}
			b.small.Reset(out)
			b.src = &b.small
			if cl := resp.Header["Content-Length"]; len(cl) != 1 || !isDecimal(cl[0], int64(len(out))) {
				resp.ContentLength = int64(len(out))
				resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
			}
			return
		}
		// Streamed from here: the bytes read so far must outlive the pool.
		read := bytes.NewReader(bytes.Clone(buf[:n]))
		putBodyBuf(pooled)
		switch {
		case err == nil: // longer than declared: stream all of it
			src = io.MultiReader(read, up)
		case err == io.EOF:
			src = io.MultiReader(read, errReader{io.ErrUnexpectedEOF})
		default:
			src = io.MultiReader(read, errReader{err})
		}
	}
	if resp.Trailer != nil {
		src = &eofHook{r: src, fn: b.scrubTrailer}
	}
	for i := len(encs) - 1; i >= 0; i-- {
		d := newDecoder(encs[i], src)
		b.decoders = append(b.decoders, d)
		src = d
	}
	sr := b.rep.NewReader(src)
	b.src, b.scrub = sr, sr
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	if len(encs) > 0 {
		resp.Header.Del("Content-Encoding")
	}
}

// upgrade sets b up for a 101 response: a WebSocket's server frames are
// scrubbed, any other protocol is unscrubbable. keyhole strips the
// extension offer from the upgrade request, so an extension in the answer
// is one the client never offered: refused too.
func (b *Body) upgrade(resp *http.Response) error {
	rwc, ok := b.src.(io.ReadWriteCloser)
	if ok {
		b.w = rwc
	}
	if b.rep.Len() == 0 {
		return nil
	}
	var why string
	switch {
	case !headerHasToken(resp.Header, "Upgrade", "websocket"):
		why = "upgrade to a protocol other than websocket"
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		why = "websocket extensions"
	case !ok:
		why = "websocket body is not writable"
	default:
		ws := b.rep.WebSocket(rwc)
		b.src, b.w, b.scrub = ws, ws, ws
		b.up = ws
		return nil
	}
	return fmt.Errorf("scrub response: %s: %w", why, ErrUnscrubbableEncoding)
}

// isDecimal reports whether s is n written in decimal, without allocating.
func isDecimal(s string, n int64) bool {
	var buf [20]byte
	return string(strconv.AppendInt(buf[:0], n, 10)) == s
}

// bodiless reports whether resp has no body by definition (RFC 9110,
// section 6.4.1).
func bodiless(resp *http.Response, reqMethod string) bool {
	s := resp.StatusCode
	return reqMethod == http.MethodHead || s >= 100 && s < 200 || s == http.StatusNoContent || s == http.StatusNotModified
}

// scrubHeader scrubs every value of h in place, removes every field whose
// name holds a secret, and returns the number of replacements (a removed
// field counts one). Names are matched without regard to case, since
// net/http canonicalizes them. The names removed are appended to *dropped
// unless it is nil.
func (r *Replacer) scrubHeader(h http.Header, dropped *[]string) int {
	if r.Len() == 0 {
		return 0
	}
	n := 0
	for k, vs := range h {
		if r.nameHasSecret(k) {
			delete(h, k)
			n++
			if dropped != nil {
				*dropped = append(*dropped, k)
			}
			continue
		}
		for i, v := range vs {
			if s, c := r.ReplaceString(v); c > 0 {
				vs[i], v = s, s
				n += c
			}
			if s, c := r.unfolded(v); c > 0 {
				vs[i] = s
				n += c
			}
		}
	}
	return n
}

// unfolded returns v without its spaces and tabs, scrubbed, when that
// holds a secret, and v with 0 otherwise. An upstream can fold a header
// line in the middle of a value (obs-fold, RFC 9112 section 5.2), which
// net/http unfolds into a space, and a reader can take the space out
// again. A value that needs this loses its spaces: it held a secret.
func (r *Replacer) unfolded(v string) (string, int) {
	if strings.IndexByte(v, ' ') < 0 && strings.IndexByte(v, '\t') < 0 {
		return v, 0
	}
	var buf [256]byte
	b := buf[:0]
	for i := 0; i < len(v); i++ {
		if v[i] != ' ' && v[i] != '\t' {
			b = append(b, v[i])
		}
	}
	out, n := r.replaceIfAny(b)
	if n == 0 {
		return v, 0
	}
	return string(out), n
}

// nameHasSecret reports whether the header name k, lowered, holds a
// lowered form of a secret.
func (r *Replacer) nameHasSecret(k string) bool {
	if r.names == nil {
		return false
	}
	var buf [128]byte
	b := buf[:0]
	for i := 0; i < len(k); i++ {
		b = append(b, toLower(k[i]))
	}
	// Names are matched by the literal stages only (see Compile), whose
	// search keeps b on the stack.
	for _, st := range r.names.stages {
		if at, _ := st.next(b, 0, &cursor{}); at >= 0 {
			return true
		}
	}
	return false
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// eofHook calls fn once, when r reaches EOF.
type eofHook struct {
	r  io.Reader
	fn func()
}

func (h *eofHook) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF && h.fn != nil {
		h.fn()
		h.fn = nil
	}
	return n, err
}
