package scrub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"keyhole/secret"
)

const maskTestValue = "sk_live_MASKtestVALUE_0123456789"

func maskTestMasker() *Masker {
	return CompileMask([]Secret{
		{Name: "STRIPE", Value: secret.New([]byte(maskTestValue))},
		{Name: "A_LONG_NAME", Value: secret.New([]byte("short"))},
	})
}

// grpcFrame returns one gRPC message with flags and payload.
func grpcFrame(flags byte, payload string) []byte {
	b := make([]byte, 5, 5+len(payload))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

func TestMaskKeepsLength(t *testing.T) {
	m := maskTestMasker()
	cases := []struct {
		name, in, want string
		n              int
		err            error
	}{
		{name: "raw value", in: "key=" + maskTestValue + ";", want: "key=<<STRIPE>>" + strings.Repeat("*", len(maskTestValue)-10) + ";", n: 1},
		{name: "json escaped form", in: `"` + maskTestValue + `"`, want: `"<<STRIPE>>` + strings.Repeat("*", len(maskTestValue)-10) + `"`, n: 1},
		{name: "nothing", in: "hello", want: "hello"},
		{name: "a value shorter than its placeholder", in: "x short y", err: ErrUnmaskable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			n, err := m.Mask(b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if string(b) != tc.want || n != tc.n || len(b) != len(tc.in) {
				t.Fatalf("got %d masks, %q; want %d, %q", n, strings.ReplaceAll(string(b), maskTestValue, "SECRET"), tc.n, tc.want)
			}
		})
	}
}

func TestGRPCReaderMasksEachMessage(t *testing.T) {
	m := maskTestMasker()
	var src bytes.Buffer
	src.Write(grpcFrame(0, "first "+maskTestValue))
	src.Write(grpcFrame(0, ""))
	src.Write(grpcFrame(0x80, "grpc-status: 0\r\n")) // a gRPC-Web trailer frame
	r := m.GRPCReader(iotestOneByte{&src}, true)
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(maskTestValue)) {
		t.Fatal("output contains the secret")
	}
	want := append(append(grpcFrame(0, "first <<STRIPE>>"+strings.Repeat("*", len(maskTestValue)-10)), grpcFrame(0, "")...), grpcFrame(0x80, "grpc-status: 0\r\n")...)
	if !bytes.Equal(out, want) || r.Count() != 1 {
		t.Fatalf("got %q (%d masks), want %q", out, r.Count(), want)
	}
}

func TestGRPCReaderRefuses(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"compressed message", grpcFrame(1, "\x1f\x8b..."), ErrUnmaskable},
		{"short secret", grpcFrame(0, "is short"), ErrUnmaskable},
		{"over the size limit", []byte{0, 0xff, 0xff, 0xff, 0xff}, ErrUnmaskable},
		{"cut inside a message", grpcFrame(0, "abcdef")[:8], io.ErrUnexpectedEOF},
		{"cut inside a prefix", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := io.ReadAll(maskTestMasker().GRPCReader(bytes.NewReader(tc.in), true))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(out) != 0 {
				t.Fatalf("got %d bytes of a message that was refused", len(out))
			}
		})
	}
}

// Without a secret in the request, a compressed message passes, as an
// undecodable body does.
func TestGRPCReaderPassesCompressedWhenNotStrict(t *testing.T) {
	in := grpcFrame(1, "\x1f\x8b...")
	out, err := io.ReadAll(maskTestMasker().GRPCReader(bytes.NewReader(in), false))
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("got %q, %v; want the message unchanged", out, err)
	}
}

func TestGRPCResponseScrubsHeadersAndTrailers(t *testing.T) {
	m := maskTestMasker()
	rep := Compile([]Secret{{Name: "STRIPE", Value: secret.New([]byte(maskTestValue))}})
	trailer := http.Header{"Grpc-Status": {"0"}, "Grpc-Message": {"bad " + maskTestValue}}
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/grpc"}, "X-Echo": {maskTestValue}},
		Trailer: trailer, Body: io.NopCloser(bytes.NewReader(grpcFrame(0, maskTestValue)))}
	if !IsGRPC(resp.Header) {
		t.Fatal("IsGRPC: got false, want true")
	}
	b := m.GRPCResponse(rep, resp, true)
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(maskTestValue)) || strings.Contains(resp.Trailer.Get("Grpc-Message"), maskTestValue) ||
		resp.Header.Get("X-Echo") != "<<STRIPE>>" {
		t.Fatal("response contains the secret")
	}
	if len(out) != 5+len(maskTestValue) || b.Scrubbed() != 3 {
		t.Fatalf("got %d bytes, %d replacements; want %d, 3", len(out), b.Scrubbed(), 5+len(maskTestValue))
	}
}

func TestIsGRPC(t *testing.T) {
	cases := map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "Application/GRPC; charset=x": true,
		"application/grpc-web": true, "application/grpc-web+proto": true,
		"application/grpc-web-text": false, "application/grpc-web-text+proto": false,
		"application/json": false, "application/grpcx": false, "": false,
	}
	for ct, want := range cases {
		if got := IsGRPC(http.Header{"Content-Type": {ct}}); got != want {
			t.Errorf("IsGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

// iotestOneByte reads one byte at a time.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// FuzzGRPCMask: whatever the upstream sends, the masked stream never holds
// a secret, and a stream that passes keeps every length.
func FuzzGRPCMask(f *testing.F) {
	f.Add(grpcFrame(0, "x"+maskTestValue+"y"), 3)
	f.Add(append(grpcFrame(0, maskTestValue[:10]), grpcFrame(0, maskTestValue[10:])...), 1)
	f.Add(grpcFrame(1, maskTestValue), 7)
	m := CompileMask([]Secret{{Name: "STRIPE", Value: secret.New([]byte(maskTestValue))}})
	f.Fuzz(func(t *testing.T, in []byte, chunk int) {
		if len(in) > 16<<10 {
			return // long inputs add time, not cases: framing is per message
		}
		if chunk <= 0 {
			chunk = 1
		}
		var msgs []byte
		// Frame arbitrary bytes as messages so that masking is exercised.
		for rest := in; len(rest) > 0; {
			n := min(len(rest), chunk)
			msgs = append(msgs, grpcFrame(0, string(rest[:n]))...)
			rest = rest[n:]
		}
		for _, src := range [][]byte{in, msgs} {
			out, err := io.ReadAll(m.GRPCReader(bytes.NewReader(src), true))
			if err == nil && len(out) != len(src) {
				t.Fatalf("length changed: %d to %d", len(src), len(out))
			}
			for i := 0; i+5 <= len(out); {
				size := int(binary.BigEndian.Uint32(out[i+1:]))
				if i+5+size > len(out) {
					break
				}
				if bytes.Contains(out[i+5:i+5+size], []byte(maskTestValue)) {
					t.Fatal("a masked message contains the secret")
				}
				i += 5 + size
			}
		}
	})
}
