package proxy

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// A response goes to the agent in as few TLS records as it can: the
// status line, the header and the first read of the body are one write,
// and each later read of the body another (the client connection then
// holds small records back and sends them together, see coalesce.go).
// Framing follows RFC 9112 §6: Content-Length when the length is known,
// chunked when it is not, with the upstream's trailers after the last
// chunk, or for an HTTP/1.0 client the body ended by closing the
// connection; nothing after the header for HEAD, 1xx, 204 and 304.

// h1WriteSize is the size of the buffer a response is written from: a
// full TLS record of data.
const h1WriteSize = 16 << 10

var h1Writes = sync.Pool{New: func() any { b := make([]byte, 0, h1WriteSize); return &b }}

// h1Framing says how a response body is delimited.
type h1Frame int

const (
	h1NoBody  h1Frame = iota // nothing after the header
	h1Length                 // Content-Length
	h1Chunked                // Transfer-Encoding: chunked, then trailers
	h1Closed                 // ended by closing the connection (HTTP/1.0)
	h1Upgrade                // a 101: the header as it is, then another protocol
)

// errShortBody ends a response whose body ended before its Content-Length.
var errShortBody = errors.New("response body shorter than its Content-Length")

// chunkRoom is the space kept before a chunk's data for its size line.
const chunkRoom = 8 // up to 6 hex digits and CRLF, for a chunk of < 16 MiB

// writeResponse writes resp, the answer to req, and reports an error of
// the agent's connection or of the body: the connection must then close
// (a truncated body never looks complete). closing adds Connection: close.
func (h *h1conn) writeResponse(req *http.Request, resp *http.Response, closing bool) error {
	// The trailers sent are this map's: the scrubber gave every response
	// that can have trailers one, which the transport fills in place when
	// the body ends (announced or not) and the scrubber scrubs then. A map
	// the transport made later would be unscrubbed: it is never read.
	trailer := resp.Trailer
	frame, probe, err := framing(req, resp)
	if err != nil {
		return err
	}
	if frame == h1Closed {
		closing = true
	}
	bp := h1Writes.Get().(*[]byte)
	defer putWrite(bp)
	b := appendHead((*bp)[:0], req, resp, frame, closing)
	switch frame {
	case h1NoBody:
		_, err = h.conn.Write(b)
	case h1Length:
		err = h.writeLength(b, resp)
	case h1Chunked:
		err = h.writeChunked(b, resp.Body, trailer, probe)
	case h1Closed:
		b = append(b, probe...)
		err = h.writeStream(b, resp.Body)
	}
	return err
}

// putWrite gives a write buffer back to its pool, unless a large header
// made it grow.
func putWrite(bp *[]byte) {
	if cap(*bp) == h1WriteSize {
		*bp = (*bp)[:0]
		h1Writes.Put(bp)
	}
}

// writeHead writes only the status line and header of resp.
func (h *h1conn) writeHead(resp *http.Response, frame h1Frame) error {
	bp := h1Writes.Get().(*[]byte)
	b := appendHead((*bp)[:0], nil, resp, frame, false)
	_, err := h.conn.Write(b)
	putWrite(bp)
	return err
}

// framing decides how resp's body is delimited for req. A body said to be
// empty is read once to be sure (as http.Response.Write does); a byte
// found, probe, starts a body of unknown length.
func framing(req *http.Request, resp *http.Response) (h1Frame, []byte, error) {
	if !bodyAllowed(req.Method, resp.StatusCode) {
		return h1NoBody, nil, nil
	}
	var probe []byte
	if resp.ContentLength == 0 {
		if resp.Body == nil || resp.Body == http.NoBody {
			return h1Length, nil, nil
		}
		var one [1]byte
		n, err := io.ReadFull(resp.Body, one[:])
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, nil, err
			}
			return h1Length, nil, nil
		}
		probe = one[:]
		resp.ContentLength = -1
	}
	switch {
	case resp.ContentLength > 0:
		return h1Length, nil, nil
	case !req.ProtoAtLeast(1, 1):
		return h1Closed, probe, nil
	}
	return h1Chunked, probe, nil
}

// h1Excluded are the header fields the framing writes itself.
var h1Excluded = map[string]bool{"Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Connection": true}

// appendHead appends the status line and header of resp to b. req is nil
// for a 101, whose header goes as it is.
func appendHead(b []byte, req *http.Request, resp *http.Response, frame h1Frame, closing bool) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(resp.StatusCode), 10)
	b = append(b, ' ')
	text, ok := strings.CutPrefix(resp.Status, strconv.Itoa(resp.StatusCode)+" ")
	if !ok || text == "" {
		text = http.StatusText(resp.StatusCode)
	}
	b = append(b, text...)
	b = append(b, "\r\n"...)
	w := appendWriter{b}
	exclude := h1Excluded
	if frame == h1Upgrade {
		exclude = nil
	}
	_ = resp.Header.WriteSubset(&w, exclude) // sorted, CR and LF in values made spaces
	b = w.b
	switch frame {
	case h1Length:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, resp.ContentLength, 10)
		b = append(b, "\r\n"...)
	case h1Chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if names := trailerNames(resp.Trailer); names != "" {
			b = append(b, "Trailer: "...)
			b = append(b, names...)
			b = append(b, "\r\n"...)
		}
	case h1NoBody:
		if resp.ContentLength > 0 && (req.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified) {
			// The length of the body a GET would get.
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, resp.ContentLength, 10)
			b = append(b, "\r\n"...)
		}
	}
	switch {
	case closing:
		b = append(b, "Connection: close\r\n"...)
	case req != nil && !req.ProtoAtLeast(1, 1):
		b = append(b, "Connection: keep-alive\r\n"...) // an HTTP/1.0 client that asked
	}
	return append(b, "\r\n"...)
}

// trailerNames lists the trailer fields the upstream announced.
func trailerNames(t http.Header) string {
	if len(t) == 0 {
		return ""
	}
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// appendWriter appends what is written to it to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// writeLength writes head then exactly resp.ContentLength bytes of the
// body, each read as it arrives.
func (h *h1conn) writeLength(head []byte, resp *http.Response) error {
	left := resp.ContentLength
	b := head
	for left > 0 {
		if len(b) == cap(b) { // a header as large as the buffer
			if _, err := h.conn.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		room := int(min(int64(cap(b)-len(b)), left))
		n, err := resp.Body.Read(b[len(b) : len(b)+room])
		b = b[:len(b)+n]
		left -= int64(n)
		if n > 0 {
			if _, werr := h.conn.Write(b); werr != nil {
				return werr
			}
			b = b[:0]
		}
		switch {
		case err == nil:
		case left == 0 && errors.Is(err, io.EOF):
		case errors.Is(err, io.EOF):
			return errShortBody
		default:
			return err
		}
	}
	if len(b) > 0 { // the header of an empty body
		_, err := h.conn.Write(b)
		return err
	}
	return nil
}

// writeStream writes head then the body as it arrives, unframed: the
// connection's close ends it.
func (h *h1conn) writeStream(head []byte, body io.Reader) error {
	if _, err := h.conn.Write(head); err != nil {
		return err
	}
	b := head[:0]
	for {
		n, err := body.Read(b[:cap(b)])
		if n > 0 {
			if _, werr := h.conn.Write(b[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// writeChunked writes head at once (a stream's events must not wait for
// its first), then each read of the body as one chunk, then the last chunk
// with the trailers the upstream sent.
func (h *h1conn) writeChunked(head []byte, body io.Reader, trailer http.Header, probe []byte) error {
	if _, err := h.conn.Write(head); err != nil {
		return err
	}
	b := head[:cap(head)]
	data := b[chunkRoom : len(b)-2]
	n := copy(data, probe)
	for {
		m, err := body.Read(data[n:])
		n += m
		if n > 0 {
			size := strconv.AppendInt(b[:0:chunkRoom], int64(n), 16)
			size = append(size, "\r\n"...)
			start := chunkRoom - len(size)
			copy(b[start:], size)
			end := chunkRoom + n
			b[end], b[end+1] = '\r', '\n'
			if _, werr := h.conn.Write(b[start : end+2]); werr != nil {
				return werr
			}
			n = 0
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	end := append(b[:0], "0\r\n"...)
	w := appendWriter{end}
	_ = trailer.Write(&w)
	end = append(w.b, "\r\n"...)
	_, err := h.conn.Write(end)
	return err
}
