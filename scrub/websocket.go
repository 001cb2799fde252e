package scrub

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// maxFrameHeader is the longest header of an unmasked frame: two bytes and
// a 64-bit length (RFC 6455, section 5.2).
const maxFrameHeader = 10

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPong         = 0xA
	maxControl     = 125
)

// WebSocketConn scrubs the server-to-client direction of a WebSocket
// connection (RFC 6455). Read parses the server's frames and scrubs the
// payload of text and binary messages as a stream that runs across the
// frames of one message, so a secret split between fragments is found and
// no message is ever buffered whole. Output is re-framed: a message's
// first frame keeps its opcode, later ones are continuation frames, and
// the last has FIN set. Control frames pass in their place among the
// fragments, their payload scrubbed and cut to 125 bytes. Write passes the
// client's frames to the server unchanged.
//
// Compression cannot be scrubbed, so a frame with a reserved bit set is an
// error, as is a masked server frame; strip the extension offer from the
// upgrade request with StripWebSocketExtensions. Read and Write may run on
// different goroutines; each is not safe for concurrent use with itself.
type WebSocketConn struct {
	up  io.ReadWriteCloser
	br  *bufio.Reader
	pl  pipeline
	out []byte // out[off:] is framed output not yet returned
	off int
	err error

	inFrame   bool   // reading a data frame's payload
	remaining uint64 // payload bytes of the data frame still to read
	fin       bool   // the data frame ends its message
	inMsg     bool   // between a message's first frame and its end
	msgOp     byte
	sent      bool // a frame of the current message has been returned

	count     atomic.Int64
	closeOnce sync.Once
	closeErr  error
}

// WebSocket returns a connection that scrubs what upstream, a WebSocket
// connection to the server after the 101 response, sends to the client.
// With no patterns it passes frames through unparsed.
func (r *Replacer) WebSocket(upstream io.ReadWriteCloser) *WebSocketConn {
	c := &WebSocketConn{up: upstream}
	if r != nil && len(r.stages) > 0 {
		c.br = bufio.NewReaderSize(upstream, 4096)
		c.pl = newPipeline(r.stages)
	}
	return c
}

// StripWebSocketExtensions removes the Sec-WebSocket-Extensions header
// from an upgrade request, so that the server cannot negotiate
// permessage-deflate or any other extension that would hide payloads from
// scrubbing.
func StripWebSocketExtensions(h http.Header) { h.Del("Sec-WebSocket-Extensions") }

// Read implements io.Reader, returning scrubbed frames. A protocol error
// or an upstream error is returned after the frames before it.
func (c *WebSocketConn) Read(p []byte) (int, error) {
	if c.pl.stages == nil {
		return c.up.Read(p)
	}
	for c.off == len(c.out) {
		if c.err != nil {
			return 0, c.err
		}
		c.out, c.off = c.out[:0], 0
		if c.inFrame {
			c.err = c.readPayload()
		} else {
			c.err = c.readHeader()
		}
	}
	n := copy(p, c.out[c.off:])
	c.off += n
	return n, nil
}

// Write implements io.Writer, passing p to the server unchanged.
func (c *WebSocketConn) Write(p []byte) (int, error) { return c.up.Write(p) }

// Close closes the upstream connection. Calls after the first return the
// first one's result.
func (c *WebSocketConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.up.Close() })
	return c.closeErr
}

// Count returns the number of replacements made so far. It is safe to call
// from any goroutine.
func (c *WebSocketConn) Count() int { return int(c.count.Load()) }

func (c *WebSocketConn) readHeader() error {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		if err == io.EOF && !c.inMsg {
			return io.EOF
		}
		return c.fail(err)
	}
	fin, op, n := h[0]&0x80 != 0, h[0]&0x0f, uint64(h[1]&0x7f)
	switch {
	case h[0]&0x70 != 0:
		return errors.New("scrub: websocket: server frame has reserved bits set (an extension was negotiated)")
	case h[1]&0x80 != 0:
		return errors.New("scrub: websocket: server frame is masked")
	}
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[:2]); err != nil {
			return c.fail(err)
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(c.br, h[:8]); err != nil {
			return c.fail(err)
		}
		if n = binary.BigEndian.Uint64(h[:8]); n>>63 != 0 {
			return errors.New("scrub: websocket: frame length has its top bit set")
		}
	}
	switch {
	case op >= opClose && op <= opPong:
		return c.control(fin, op, n)
	case op == opText || op == opBinary:
		if c.inMsg {
			return errors.New("scrub: websocket: data frame inside a fragmented message")
		}
		c.inMsg, c.msgOp, c.sent = true, op, false
	case op == opContinuation:
		if !c.inMsg {
			return errors.New("scrub: websocket: continuation frame outside a message")
		}
	default:
		return fmt.Errorf("scrub: websocket: reserved opcode %#x", op)
	}
	c.inFrame, c.remaining, c.fin = true, n, fin
	if n == 0 {
		return c.endFrame()
	}
	return nil
}

// control reads a control frame's payload and frames it, scrubbed.
func (c *WebSocketConn) control(fin bool, op byte, n uint64) error {
	if !fin || n > maxControl {
		return errors.New("scrub: websocket: control frame fragmented or longer than 125 bytes")
	}
	var payload [maxControl]byte
	if _, err := io.ReadFull(c.br, payload[:n]); err != nil {
		return c.fail(err)
	}
	out, k := (&Replacer{stages: c.pl.stages}).Replace(c.reserve(), payload[:n])
	c.count.Add(int64(k))
	c.frame(out[:min(len(out), maxFrameHeader+maxControl)], true, op)
	return nil
}

// readPayload reads what is available of the current data frame into the
// message's scrubbing pipeline and frames the output.
func (c *WebSocketConn) readPayload() error {
	space := c.pl.space()
	if uint64(len(space)) > c.remaining {
		space = space[:c.remaining]
	}
	n, err := c.br.Read(space)
	c.pl.commit(n)
	c.remaining -= uint64(n)
	if err != nil {
		// Return what is certain, then the error; the held-back bytes
		// may be the start of a secret.
		c.emit(false)
		c.pl.drop()
		return c.fail(err)
	}
	if c.remaining == 0 {
		return c.endFrame()
	}
	c.emit(false)
	return nil
}

// endFrame handles the end of a data frame's payload.
func (c *WebSocketConn) endFrame() error {
	c.inFrame = false
	c.emit(c.fin)
	if c.fin {
		c.inMsg = false
	}
	return nil
}

// emit frames the pipeline's output as the next frame of the message. With
// final the message ends, in a frame of its own if need be; otherwise
// empty output is not framed.
func (c *WebSocketConn) emit(final bool) {
	out, k := c.pl.flush(c.reserve(), final)
	c.count.Add(int64(k))
	if len(out) == maxFrameHeader && !final {
		c.out = out[:0]
		return
	}
	op := c.msgOp
	if c.sent {
		op = opContinuation
	}
	c.sent = true
	c.frame(out, final, op)
}

// reserve returns the empty output buffer with room for a frame header.
func (c *WebSocketConn) reserve() []byte {
	if cap(c.out) < maxFrameHeader {
		c.out = make([]byte, 0, maxFrameHeader+c.pl.bufSize())
	}
	return c.out[:maxFrameHeader]
}

// frame writes the header of a frame into the room that reserve left at
// the start of buf, before its payload, and makes the frame the output.
func (c *WebSocketConn) frame(buf []byte, fin bool, op byte) {
	var h [maxFrameHeader]byte
	hdr := appendFrameHeader(h[:0], fin, op, len(buf)-maxFrameHeader)
	start := maxFrameHeader - len(hdr)
	copy(buf[start:], hdr)
	c.out, c.off = buf, start
}

// fail wraps an upstream read error; the end of the stream inside a frame
// or a message is io.ErrUnexpectedEOF.
func (c *WebSocketConn) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("scrub: websocket: read: %w", err)
}

// appendFrameHeader appends the header of an unmasked frame with a
// payload of n bytes.
func appendFrameHeader(dst []byte, fin bool, op byte, n int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

var _ io.ReadWriteCloser = (*WebSocketConn)(nil)
