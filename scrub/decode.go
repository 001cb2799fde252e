package scrub

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// maxEncodings bounds the number of stacked content codings, each of which
// costs a decoder and its window.
const maxEncodings = 4

// maxZstdWindow is the largest zstd window accepted. RFC 9659 caps the
// window of the "zstd" content coding at 8 MiB, so that a decoder's memory
// is bounded; the gzip and deflate windows are 32 KiB and the brotli
// window at most 16 MiB (large windows are not enabled).
const maxZstdWindow = 8 << 20

// parseEncodings returns the content codings of a Content-Encoding header
// in the order they were applied, without "identity". When one cannot be
// decoded it returns that one as bad.
func parseEncodings(values []string) (encs []string, bad string) {
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.ToLower(strings.TrimSpace(e))
			switch e {
			case "", "identity":
			case "gzip", "x-gzip", "deflate", "br", "zstd":
				if len(encs) == maxEncodings {
					return nil, "more than 4 codings"
				}
				encs = append(encs, e)
			default:
				return nil, e
			}
		}
	}
	return encs, ""
}

// newDecoder returns a reader of the decoded src. The decoder is set up on
// the first Read, so that neither Response nor a slow upstream blocks on a
// header; an error in setting it up, such as a bad gzip header, is that
// Read's error. Closing the decoder does not close src.
func newDecoder(enc string, src io.Reader) io.ReadCloser {
	var open func() (io.ReadCloser, error)
	switch enc {
	case "gzip", "x-gzip":
		open = func() (io.ReadCloser, error) {
			z, err := gzip.NewReader(src)
			if err != nil {
				return nil, err
			}
			return z, nil
		}
	case "deflate":
		open = func() (io.ReadCloser, error) { return openDeflate(src) }
	case "br":
		open = func() (io.ReadCloser, error) { return io.NopCloser(brotli.NewReader(src)), nil }
	case "zstd":
		open = func() (io.ReadCloser, error) {
			d, err := zstd.NewReader(src,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(maxZstdWindow))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}
	}
	return &lazyDecoder{name: enc, open: open}
}

// openDeflate decodes the "deflate" coding, which RFC 9110 defines as a
// zlib stream but which some servers send as raw deflate; the two are told
// apart by the zlib header.
func openDeflate(src io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(src)
	hdr, err := br.Peek(2)
	if len(hdr) == 0 && err == io.EOF {
		return nil, io.EOF
	}
	if isZlibHeader(hdr) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// isZlibHeader reports whether h starts a zlib stream (RFC 1950, section
// 2.2): compression method 8 with a window of at most 32 KiB, and a check
// value that makes the first two bytes a multiple of 31.
func isZlibHeader(h []byte) bool {
	return len(h) == 2 && h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}

type lazyDecoder struct {
	name string
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	err  error
}

func (d *lazyDecoder) Read(p []byte) (int, error) {
	if d.rc == nil && d.err == nil {
		d.rc, d.err = d.open()
		if d.err != nil {
			d.rc = nil
			if d.err != io.EOF {
				d.err = fmt.Errorf("scrub: decode %s: %w", d.name, d.err)
			}
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.rc.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("scrub: decode %s: %w", d.name, err)
	}
	return n, err
}

func (d *lazyDecoder) Close() error {
	if d.rc == nil {
		return nil
	}
	return d.rc.Close()
}
