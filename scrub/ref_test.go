package scrub

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"testing"
)

// naive is the reference the engine is checked against: at each position it
// takes the longest pattern that starts there, else copies one byte. It
// returns the output and, for each replacement, the span it occupies in
// the output.
func naive(find, repl []string, src []byte) ([]byte, [][2]int) {
	var out []byte
	var spans [][2]int
	for i := 0; i < len(src); {
		best := -1
		for k, f := range find {
			if f != "" && bytes.HasPrefix(src[i:], []byte(f)) && (best < 0 || len(f) > len(find[best])) {
				best = k
			}
		}
		if best < 0 {
			out = append(out, src[i])
			i++
			continue
		}
		spans = append(spans, [2]int{len(out), len(out) + len(repl[best])})
		out = append(out, repl[best]...)
		i += len(find[best])
	}
	return out, spans
}

// patterns returns the find and replace lists r was compiled into, in the
// order of its single stage.
func patterns(t testing.TB, r *Replacer) ([]string, []string) {
	t.Helper()
	switch len(r.stages) {
	case 0:
		return nil, nil
	case 1:
		return r.stages[0].find, r.stages[0].repl
	}
	t.Fatalf("got %d stages, want at most 1", len(r.stages))
	return nil, nil
}

// checkLeak fails if a pattern occurs in out entirely outside the spans of
// replacements, that is within bytes copied from the input.
func checkLeak(t testing.TB, find []string, out []byte, spans [][2]int) {
	t.Helper()
	copied := 0 // start of the current run of copied bytes
	check := func(end int) {
		for k, f := range find {
			if i := bytes.Index(out[copied:end], []byte(f)); f != "" && i >= 0 {
				t.Fatalf("output contains pattern %d at offset %d", k, copied+i)
			}
		}
	}
	for _, s := range spans {
		check(s[0])
		copied = s[1]
	}
	check(len(out))
}

// chunkReader returns its data in chunks whose sizes cycle through sizes
// (each at least 1).
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = max(1, c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAllSized reads r to EOF with reads of at most bufSize bytes.
func readAllSized(r io.Reader, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// redact quotes s for a failure message with every occurrence of secrets
// replaced by "[secret N]", N its index, so that a message shows where a
// secret leaked but never its bytes.
func redact(s string, secrets ...string) string {
	names := make([]string, len(secrets))
	for i := range secrets {
		names[i] = fmt.Sprintf("[secret %d]", i)
	}
	out, _ := naive(secrets, names, []byte(s))
	return strconv.Quote(string(out))
}

// describeDiff names the first differing offset without printing bytes
// that may hold a secret.
func describeDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("outputs differ at offset %d (got len %d, want len %d)", i, len(got), len(want))
}
