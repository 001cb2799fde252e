package scrub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// MaxGRPCMessage bounds a gRPC message that GRPCReader holds to mask it:
// 4 MiB, gRPC's own default limit on a received message.
const MaxGRPCMessage = 4 << 20

// grpcHeader is the prefix of every gRPC message: a flags byte (bit 0:
// compressed; bit 7: a gRPC-Web trailer frame) and a 4-byte big-endian
// length.
const grpcHeader = 5

// IsGRPC reports whether h declares a gRPC or binary gRPC-Web body
// (Content-Type application/grpc, application/grpc+proto,
// application/grpc-web...), whose messages are length-prefixed.
// application/grpc-web-text is base64 text, not frames: it is not one.
func IsGRPC(h http.Header) bool {
	ct := strings.ToLower(h.Get("Content-Type"))
	if strings.HasPrefix(ct, "application/grpc-web-text") {
		return false
	}
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") ||
		strings.HasPrefix(ct, "application/grpc;") || strings.HasPrefix(ct, "application/grpc-web")
}

// GRPCReader masks the secrets in a stream of gRPC messages. It reads one
// whole message (at most MaxGRPCMessage bytes), masks it in place (see
// Masker), and returns it with its unchanged prefix before reading the
// next one, so each message leaves as soon as it is complete: streaming
// calls stream. A compressed message cannot be searched: when strict (the
// request carried a secret) and the Masker has anything to look for it is
// ErrUnmaskable; otherwise it passes unchanged, as Response passes a body
// it cannot decode.
type GRPCReader struct {
	src    io.Reader
	m      *Masker
	strict bool
	buf    []byte // the current message, prefix included
	off    int    // buf[off:] not yet returned
	err    error
	count  atomic.Int64
}

// GRPCReader returns a reader of src's messages with every secret masked.
func (m *Masker) GRPCReader(src io.Reader, strict bool) *GRPCReader {
	return &GRPCReader{src: src, m: m, strict: strict}
}

// Read implements io.Reader. It returns io.EOF at the end of src after a
// whole message, io.ErrUnexpectedEOF inside one, and an error wrapping
// ErrUnmaskable for a message it cannot mask; a message over
// MaxGRPCMessage is an error too.
func (r *GRPCReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

// next reads and masks the next message into buf.
func (r *GRPCReader) next() error {
	var h [grpcHeader]byte
	if _, err := io.ReadFull(r.src, h[:]); err != nil {
		return err // io.EOF between messages, io.ErrUnexpectedEOF inside a prefix
	}
	size := binary.BigEndian.Uint32(h[1:])
	if size > MaxGRPCMessage {
		return fmt.Errorf("scrub: gRPC message of %d bytes over the %d-byte limit: %w", size, MaxGRPCMessage, ErrUnmaskable)
	}
	compressed := h[0]&1 != 0
	if compressed && r.strict && r.m.Len() > 0 {
		return fmt.Errorf("scrub: compressed gRPC message: %w", ErrUnmaskable)
	}
	n := grpcHeader + int(size)
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	r.buf, r.off = r.buf[:n], 0
	copy(r.buf, h[:])
	if _, err := io.ReadFull(r.src, r.buf[grpcHeader:]); err != nil {
		r.buf = r.buf[:0]
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if compressed {
		return nil
	}
	c, err := r.m.Mask(r.buf[grpcHeader:])
	if err != nil {
		r.buf = r.buf[:0]
		return err
	}
	r.count.Add(int64(c))
	return nil
}

// Count returns the masks written so far. It is safe to call from any
// goroutine.
func (r *GRPCReader) Count() int { return int(r.count.Load()) }

// GRPCResponse scrubs resp in place for a gRPC (or gRPC-Web) body and
// returns its new body, which it also stores in resp.Body. Header and
// trailer values are scrubbed as Response scrubs them (their length is
// free); the body's messages are masked by m (see GRPCReader). rep may be
// nil; strict is as for Response and GRPCReader.
func (m *Masker) GRPCResponse(rep *Replacer, resp *http.Response, strict bool) *Body {
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	up := resp.Body
	if up == nil {
		up = http.NoBody
	}
	resp.Status = "" // the standard reason text, as Response writes it
	n := rep.scrubHeader(resp.Header, nil)
	var dropped []string
	n += rep.scrubHeader(resp.Trailer, &dropped)
	b := &Body{rep: rep, trailer: resp.Trailer, dropped: dropped, up: up}
	b.headers.Store(int64(n))
	g := m.GRPCReader(up, strict)
	b.scrub, b.src = g, g // Read scrubs the trailer at the end
	resp.Body = b
	return b
}
