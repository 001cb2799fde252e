package scrub

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"keyhole/secret"
)

// TestReaderEverySplit checks that streamed output equals one-shot output
// for every two-way split of each input and for every uniform chunk size,
// read through small and large buffers.
func TestReaderEverySplit(t *testing.T) {
	for _, tc := range replaceTests {
		for engine, r := range engines(tc.find, tc.repl) {
			t.Run(tc.name+"/"+engine, func(t *testing.T) {
				in := []byte(tc.in)
				var splits [][]int
				for i := 0; i <= len(in); i++ {
					splits = append(splits, []int{i, len(in)})
				}
				for size := 1; size <= len(in); size++ {
					splits = append(splits, []int{size})
				}
				for _, sizes := range splits {
					for _, bufSize := range []int{1, 3, 600, 64 << 10} {
						rd := r.NewReader(&chunkReader{data: in, sizes: sizes})
						got, err := readAllSized(rd, bufSize)
						if err != nil {
							t.Fatalf("chunks %v, buffer %d: got error %v, want nil", sizes, bufSize, err)
						}
						if string(got) != tc.want || rd.Count() != tc.wantCount {
							t.Fatalf("chunks %v, buffer %d: got %s, count %d, want %q, count %d",
								sizes, bufSize, redact(string(got), tc.find...), rd.Count(), tc.want, tc.wantCount)
						}
					}
				}
			})
		}
	}
}

// TestReaderLargeRandom streams a body much larger than the read buffer.
func TestReaderLargeRandom(t *testing.T) {
	body, secrets := benchBody(1<<20, 10, 50)
	r := Compile(secrets)
	// One-shot output, which FuzzStream checks against the reference
	// (too slow for a body this size).
	want, _ := r.Replace(nil, body)
	for _, sizes := range [][]int{{1 << 20}, {4096}, {1, 7, 100, 9000, 33000}} {
		for _, bufSize := range []int{100, 32 << 10, 1 << 20} {
			got, err := readAllSized(r.NewReader(&chunkReader{data: body, sizes: sizes}), bufSize)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("chunks %v, buffer %d: error %v; %s", sizes, bufSize, err, describeDiff(got, want))
			}
		}
	}
}

// TestReaderPassesEventsAtOnce checks that a Read returns what the source
// yielded without waiting for more, holding back only a possible secret
// start.
func TestReaderPassesEventsAtOnce(t *testing.T) {
	r := Compile([]Secret{{Name: "K", Value: secret.FromString("sk_live_0123456789")}})
	pr, pw := io.Pipe()
	defer pw.Close()
	rd := r.NewReader(pr)
	steps := []struct {
		write string
		want  string
	}{
		{"data: hi\n\n", "data: hi\n\n"},
		{"data: sk_live_01", "data: "},
		{"23456789\n\n", "<<K>>\n\n"},
		{"data: sk_x\n\n", "data: sk_x\n\n"},
	}
	for i, s := range steps {
		go func() { _, _ = pw.Write([]byte(s.write)) }()
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 4096)
			n, _ := rd.Read(buf)
			got <- string(buf[:n])
		}()
		select {
		case g := <-got:
			if g != s.want {
				t.Fatalf("step %d: got %s, want %q", i, redact(g, "sk_live_0123456789"), s.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("step %d: Read did not return what the source yielded", i)
		}
	}
}

type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReaderSourceError(t *testing.T) {
	boom := errors.New("connection reset")
	r := Compile([]Secret{{Name: "K", Value: secret.FromString("sk_live_0123456789")}})
	tests := []struct {
		name string
		in   string
		err  error
		want string
	}{
		{"error after whole secret", "a sk_live_0123456789 b", boom, "a <<K>> b"},
		{"partial secret dropped on error", "a sk_live_0123", boom, "a "},
		{"partial secret flushed at eof", "a sk_live_0123", io.EOF, "a sk_live_0123"},
		{"unexpected eof is an error", "a sk_live_0", io.ErrUnexpectedEOF, "a "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAllSized(r.NewReader(&errAfter{data: []byte(tc.in), err: tc.err}), 5)
			wantErr := tc.err
			if wantErr == io.EOF {
				wantErr = nil
			}
			if string(got) != tc.want || !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Errorf("got %s, %v, want %q, %v", redact(string(got), "sk_live_0123456789"), err, tc.want, wantErr)
			}
		})
	}
}

type closeCounter struct {
	io.Reader
	closes int
}

func (c *closeCounter) Close() error { c.closes++; return nil }

func TestReaderClose(t *testing.T) {
	for name, r := range map[string]*Replacer{"patterns": NewPairs([]Pair{{"a", "b"}}), "none": Compile(nil)} {
		t.Run(name, func(t *testing.T) {
			src := &closeCounter{Reader: strings.NewReader("abc")}
			rd := r.NewReader(src)
			for range 2 {
				if err := rd.Close(); err != nil {
					t.Fatalf("got %v, want nil", err)
				}
			}
			if src.closes != 1 {
				t.Errorf("got %d closes, want 1", src.closes)
			}
		})
	}
	if err := NewPairs([]Pair{{"a", "b"}}).NewReader(strings.NewReader("x")).Close(); err != nil {
		t.Errorf("not a closer: got %v, want nil", err)
	}
}

// TestReaderAllocsConstant checks that a stream's allocations do not grow
// with its length.
func TestReaderAllocsConstant(t *testing.T) {
	small, secrets := benchBody(64<<10, 10, 5)
	large, _ := benchBody(4<<20, 10, 300)
	r := Chain(Compile(secrets), NewPairs([]Pair{{"dTpodW50ZXIy", "dTo8PFBXPj4="}}))
	buf := make([]byte, 1000)
	allocs := func(body []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			rd := r.NewReader(bytes.NewReader(body))
			for {
				if _, err := rd.Read(buf); err != nil {
					break
				}
			}
		})
	}
	a, b := allocs(small), allocs(large)
	if b > a || a > 12 {
		t.Errorf("got %v allocations for 64 KiB and %v for 4 MiB, want the same, at most 12", a, b)
	}
}
