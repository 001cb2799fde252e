package scrub

import (
	"bytes"
	"encoding/json"
	"testing"

	"keyhole/cputime"
)

// BenchmarkOneShotPretty is BenchmarkOneShot's 1 MiB no-match row on the
// same events pretty-printed (json.Indent, two spaces): a line break every
// 20 bytes or so, where a test for line breaks a line at a time costs
// most.
func BenchmarkOneShotPretty(b *testing.B) {
	lines, secrets := benchBody(1<<20, 10, 0)
	var body bytes.Buffer
	for line := range bytes.Lines(lines) {
		if json.Indent(&body, bytes.TrimSpace(line), "", "  ") == nil {
			body.WriteByte('\n')
		}
	}
	r := Compile(secrets)
	dst := make([]byte, 0, 2*body.Len())
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	start := cputime.Process()
	for b.Loop() {
		dst, _ = r.Replace(dst[:0], body.Bytes())
	}
	reportPerCore(b, body.Len(), cputime.Process()-start)
}
