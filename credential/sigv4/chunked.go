package sigv4

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"keyhole/credential"
)

// MaxChunk bounds one chunk of a chunk-signed upload. A chunk is held
// whole while it is hashed (its signature precedes it); the SDKs send
// 64 KiB to 8 MiB.
const MaxChunk = 16 << 20

// maxChunkLine bounds a chunk's header line.
const maxChunkLine = 4096

var crlf = []byte("\r\n")

// errChunk is a chunk-signed body keyhole cannot parse; it is a
// credential.ErrMalformed.
var errChunk = fmt.Errorf("%w: the aws-chunked body", credential.ErrMalformed)

// chunkSigner re-signs a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body as it is
// read: each "SIZE;chunk-signature=SIG\r\nDATA\r\n" chunk gets a new
// signature chained from the request's seed signature. Signatures have a
// fixed length, so the body's length does not change.
type chunkSigner struct {
	src    io.ReadCloser
	r      *bufio.Reader
	signer *v4.StreamSigner
	now    time.Time
	head   []byte   // the current chunk's header line, reused
	data   []byte   // the current chunk's data, reused
	out    [][]byte // what of the current chunk is not yet read
	done   bool
	err    error
}

func newChunkSigner(src io.ReadCloser, creds aws.Credentials, region, service string, now time.Time, seed []byte) *chunkSigner {
	// The event-stream signer's string to sign with empty headers is
	// exactly S3's chunk string to sign: AWS4-HMAC-SHA256-PAYLOAD, time,
	// scope, previous signature, hash of "" and hash of the chunk.
	return &chunkSigner{
		src:    src,
		r:      bufio.NewReaderSize(src, 8<<10),
		signer: v4.NewStreamSigner(creds, service, region, seed),
		now:    now,
	}
}

func (c *chunkSigner) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		for len(c.out) > 0 && len(c.out[0]) == 0 {
			c.out = c.out[1:]
		}
		if len(c.out) == 0 {
			if n > 0 {
				return n, nil
			}
			if c.err != nil {
				return 0, c.err
			}
			if c.done {
				return 0, io.EOF
			}
			c.err = c.next()
			continue
		}
		m := copy(p[n:], c.out[0])
		c.out[0] = c.out[0][m:]
		n += m
	}
	return n, nil
}

func (c *chunkSigner) Close() error { return c.src.Close() }

// next reads and re-signs one chunk into c.out.
func (c *chunkSigner) next() error {
	line, err := c.line()
	if err != nil {
		return err
	}
	sizeHex, ext, ok := strings.Cut(line, ";")
	oldSig, sigOK := strings.CutPrefix(ext, "chunk-signature=")
	// A signature of another length would change the body's length,
	// which its Content-Length states.
	if !ok || !sigOK || len(oldSig) != 64 || len(sizeHex) == 0 || len(sizeHex) > 8 {
		return fmt.Errorf("%w: a chunk header is not SIZE;chunk-signature=<64 hex digits>", errChunk)
	}
	size, err := strconv.ParseUint(sizeHex, 16, 32)
	if err != nil || size > MaxChunk {
		return fmt.Errorf("%w: a chunk size is not hex or exceeds %d bytes", errChunk, MaxChunk)
	}
	if cap(c.data) < int(size) {
		c.data = make([]byte, size)
	}
	data := c.data[:size]
	if _, err := io.ReadFull(c.r, data); err != nil {
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			return err // the agent's body failed: its error, not a format error
		}
		return fmt.Errorf("%w: the body ended inside a chunk", errChunk)
	}
	if crlf, err := c.line(); err != nil || crlf != "" {
		return fmt.Errorf("%w: a chunk does not end with CRLF", errChunk)
	}
	sig, err := c.signer.GetSignature(context.Background(), nil, data, c.now)
	if err != nil {
		return fmt.Errorf("sigv4: chunk signing failed")
	}
	head := append(c.head[:0], sizeHex...)
	head = append(head, ";chunk-signature="...)
	head = hex.AppendEncode(head, sig)
	head = append(head, "\r\n"...)
	c.head = head
	c.out = append(c.out[:0], head, data, crlf)
	if size == 0 {
		c.done = true
	}
	return nil
}

// line reads one CRLF-terminated line, without its CRLF. A bare LF is a
// format error: the framing keyhole writes is CRLF, so accepting LF would
// change the body's length, which its Content-Length states.
func (c *chunkSigner) line() (string, error) {
	var b []byte
	for {
		part, err := c.r.ReadSlice('\n')
		b = append(b, part...)
		if len(b) > maxChunkLine+2 {
			return "", fmt.Errorf("%w: a chunk header is longer than %d bytes", errChunk, maxChunkLine)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return "", fmt.Errorf("%w: the body ended before its last chunk", errChunk)
		case err != nil:
			return "", err
		}
		if len(b) < 2 || b[len(b)-2] != '\r' {
			return "", fmt.Errorf("%w: a chunk line does not end with CRLF", errChunk)
		}
		return string(b[:len(b)-2]), nil
	}
}
