package sigv4

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// MaxChunk bounds one chunk of a chunk-signed upload. A chunk is held
// whole while it is hashed (its signature precedes it); the SDKs send
// 64 KiB to 8 MiB.
const MaxChunk = 16 << 20

// maxChunkLine bounds a chunk's header line.
const maxChunkLine = 4096

// errChunk is a chunk-signed body keyhole cannot parse.
var errChunk = errors.New("sigv4: malformed aws-chunked body")

// chunkSigner re-signs a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body as it is
// read: each "SIZE;chunk-signature=SIG\r\nDATA\r\n" chunk gets a new
// signature chained from the request's seed signature. Signatures have a
// fixed length, so the body's length does not change.
type chunkSigner struct {
	src    io.ReadCloser
	r      *bufio.Reader
	signer *v4.StreamSigner
	now    time.Time
	out    []byte // bytes of the current chunk not yet read
	done   bool
	err    error
}

func newChunkSigner(src io.ReadCloser, creds aws.Credentials, region, service string, now time.Time, seed []byte) *chunkSigner {
	// The event-stream signer's string to sign with empty headers is
	// exactly S3's chunk string to sign: AWS4-HMAC-SHA256-PAYLOAD, time,
	// scope, previous signature, hash of "" and hash of the chunk.
	return &chunkSigner{
		src:    src,
		r:      bufio.NewReaderSize(src, 32<<10),
		signer: v4.NewStreamSigner(creds, service, region, seed),
		now:    now,
	}
}

func (c *chunkSigner) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.done {
			return 0, io.EOF
		}
		c.err = c.next()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
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
	data := make([]byte, size, size+2)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return fmt.Errorf("%w: the body ended inside a chunk", errChunk)
	}
	if crlf, err := c.line(); err != nil || crlf != "" {
		return fmt.Errorf("%w: a chunk does not end with CRLF", errChunk)
	}
	sig, err := c.signer.GetSignature(context.Background(), nil, data, c.now)
	if err != nil {
		return fmt.Errorf("sigv4: chunk signing failed")
	}
	out := make([]byte, 0, len(sizeHex)+len(";chunk-signature=")+64+4+len(data))
	out = append(out, sizeHex...)
	out = append(out, ";chunk-signature="...)
	out = hex.AppendEncode(out, sig)
	out = append(out, "\r\n"...)
	out = append(out, data...)
	out = append(out, "\r\n"...)
	c.out = out
	if size == 0 {
		c.done = true
	}
	return nil
}

// line reads one CRLF-terminated line, without its CRLF.
func (c *chunkSigner) line() (string, error) {
	var b []byte
	for {
		part, isPrefix, err := c.r.ReadLine()
		if err != nil {
			if err == io.EOF {
				return "", fmt.Errorf("%w: the body ended before its last chunk", errChunk)
			}
			return "", err
		}
		b = append(b, part...)
		if len(b) > maxChunkLine {
			return "", fmt.Errorf("%w: a chunk header is longer than %d bytes", errChunk, maxChunkLine)
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}
