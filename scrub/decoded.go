package scrub

import (
	"fmt"
	"io"
	"net/http"
)

// Decoded returns a reader of body decoded from the content codings h's
// Content-Encoding names, with the same decoders and bounds as Response
// (gzip, deflate, br, zstd, at most four stacked), and a function that
// closes the decoders (not body). An unknown coding is an error wrapping
// ErrUnscrubbableEncoding; a corrupt body is the reader's error.
func Decoded(h http.Header, body io.Reader) (io.Reader, func(), error) {
	encs, bad := parseEncodings(h.Values("Content-Encoding"))
	if bad != "" {
		return nil, nil, fmt.Errorf("decode: content-encoding: %w", ErrUnscrubbableEncoding)
	}
	src := body
	var decoders []io.Closer
	for i := len(encs) - 1; i >= 0; i-- {
		d := newDecoder(encs[i], src)
		decoders = append(decoders, d)
		src = d
	}
	return src, func() {
		for _, d := range decoders {
			_ = d.Close()
		}
	}, nil
}
