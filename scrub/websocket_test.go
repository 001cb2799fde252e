package scrub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

type wsFrame struct {
	fin     bool
	op      byte
	payload string
}

// serverFrame encodes a frame as a server sends it; rsv and mask are for
// the malformed cases.
func serverFrame(f wsFrame, rsv byte, mask bool) []byte {
	b := appendFrameHeader(nil, f.fin, f.op, len(f.payload))
	b[0] |= rsv << 4
	if mask {
		b[1] |= 0x80
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, f.payload...)
}

// parseFrames decodes the unmasked frames in b.
func parseFrames(t *testing.T, b []byte) []wsFrame {
	t.Helper()
	var out []wsFrame
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("truncated frame header")
		}
		f := wsFrame{fin: b[0]&0x80 != 0, op: b[0] & 0x0f}
		n, hl := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hl = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hl = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if b[0]&0x70 != 0 || b[1]&0x80 != 0 || len(b) < hl+n {
			t.Fatalf("malformed output frame")
		}
		f.payload = string(b[hl : hl+n])
		out = append(out, f)
		b = b[hl+n:]
	}
	return out
}

// messages reassembles data frames into messages, checking the framing
// rules, and lists control frames in their place as "op:payload".
func messages(t *testing.T, frames []wsFrame) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inMsg := false
	for _, f := range frames {
		switch {
		case f.op >= 8:
			if !f.fin || len(f.payload) > 125 {
				t.Fatalf("bad control frame in output")
			}
			out = append(out, "ctl"+string('0'+rune(f.op-8))+":"+f.payload)
			continue
		case f.op == 0 && !inMsg, f.op != 0 && inMsg:
			t.Fatalf("bad fragmentation in output: opcode %d, in message %v", f.op, inMsg)
		case f.op != 0:
			cur.Reset()
			cur.WriteString(string('0' + rune(f.op)))
			cur.WriteString(":")
			inMsg = true
		}
		cur.WriteString(f.payload)
		if f.fin {
			out = append(out, cur.String())
			inMsg = false
		}
	}
	if inMsg {
		t.Fatalf("output ends inside a message")
	}
	return out
}

type rwc struct {
	io.Reader
	w      bytes.Buffer
	closed int
}

func (c *rwc) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *rwc) Close() error                { c.closed++; return nil }

func TestWebSocket(t *testing.T) {
	k := testKey
	big := strings.Repeat("x", 70000) + k + strings.Repeat("y", 300)
	tests := []struct {
		name      string
		frames    []wsFrame
		want      []string
		wantCount int
	}{
		{"single text", []wsFrame{{true, opText, "hi " + k}}, []string{"1:hi <<STRIPE>>"}, 1},
		{"binary", []wsFrame{{true, opBinary, k + "\x00\xff"}}, []string{"2:<<STRIPE>>\x00\xff"}, 1},
		{"empty message", []wsFrame{{true, opText, ""}}, []string{"1:"}, 0},
		{
			"secret split across fragments with control frames between",
			[]wsFrame{
				{false, opText, "a " + k[:5]},
				{true, 0x9, "ping"},
				{false, opContinuation, k[5:20]},
				{false, opContinuation, ""},
				{true, 0xA, "pong " + k},
				{true, opContinuation, k[20:] + " b"},
			},
			[]string{"ctl1:ping", "ctl2:pong <<STRIPE>>", "1:a <<STRIPE>> b"},
			2,
		},
		{
			"messages in a row",
			[]wsFrame{{true, opText, k}, {false, opBinary, "1"}, {true, opContinuation, "2" + k}, {true, opClose, "\x03\xe8bye " + k}},
			[]string{"1:<<STRIPE>>", "2:12<<STRIPE>>", "ctl0:\x03\xe8bye <<STRIPE>>"},
			3,
		},
		{"16-bit length", []wsFrame{{true, opText, strings.Repeat("z", 300) + k}}, []string{"1:" + strings.Repeat("z", 300) + "<<STRIPE>>"}, 1},
		{"64-bit length", []wsFrame{{true, opText, big}}, []string{"1:" + strings.ReplaceAll(big, k, "<<STRIPE>>")}, 1},
	}
	for _, tc := range tests {
		for _, chunk := range []int{1, 7, 1 << 20} {
			t.Run(tc.name+"/chunks="+strconv.Itoa(chunk), func(t *testing.T) {
				var in []byte
				for _, f := range tc.frames {
					in = append(in, serverFrame(f, 0, false)...)
				}
				up := &rwc{Reader: &chunkReader{data: in, sizes: []int{chunk}}}
				ws := testReplacer().WebSocket(up)
				out, err := readAllSized(ws, 5000)
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				got := messages(t, parseFrames(t, out))
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					shown := make([]string, len(got))
					for i, m := range got {
						shown[i] = strings.ReplaceAll(m, k, "[secret 0]")
					}
					t.Errorf("got %d messages %q, want %q", len(got), clipAll(shown), clipAll(tc.want))
				}
				if ws.Count() != tc.wantCount {
					t.Errorf("Count: got %d, want %d", ws.Count(), tc.wantCount)
				}
			})
		}
	}
}

// clip shortens a message for a failure message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func clipAll(s []string) []string {
	out := make([]string, len(s))
	for i, m := range s {
		out[i] = clip(m)
	}
	return out
}

func TestWebSocketErrors(t *testing.T) {
	k := testKey
	good := serverFrame(wsFrame{true, opText, "ok " + k}, 0, false)
	tests := []struct {
		name    string
		in      []byte
		wantErr error // nil: any error
	}{
		{"masked", serverFrame(wsFrame{true, opText, "x"}, 0, true), nil},
		{"reserved bit", serverFrame(wsFrame{true, opText, "x"}, 4, false), nil},
		{"reserved opcode", serverFrame(wsFrame{true, 0x3, "x"}, 0, false), nil},
		{"continuation first", serverFrame(wsFrame{true, opContinuation, "x"}, 0, false), nil},
		{"new message inside a message", append(serverFrame(wsFrame{false, opText, "x"}, 0, false), serverFrame(wsFrame{true, opText, "y"}, 0, false)...), nil},
		{"fragmented control", serverFrame(wsFrame{false, 0x9, "x"}, 0, false), nil},
		{"long control", serverFrame(wsFrame{true, 0x9, strings.Repeat("x", 126)}, 0, false), nil},
		{"eof in payload", serverFrame(wsFrame{true, opText, "abc " + k}, 0, false)[:8], io.ErrUnexpectedEOF},
		{"eof in header", []byte{0x81}, io.ErrUnexpectedEOF},
		{"eof between fragments", serverFrame(wsFrame{false, opText, "abc"}, 0, false), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &rwc{Reader: bytes.NewReader(append(append([]byte{}, good...), tc.in...))}
			out, err := readAllSized(testReplacer().WebSocket(up), 4096)
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want an error (%v)", err, tc.wantErr)
			}
			// The good frame before the bad one is delivered.
			frames := parseFrames(t, out)
			if len(frames) == 0 || frames[0].payload != "ok <<STRIPE>>" {
				t.Errorf("got %d frames, want the good frame first", len(frames))
			}
			if bytes.Contains(out, []byte(k)) {
				t.Errorf("output contains secret STRIPE at offset %d", bytes.Index(out, []byte(k)))
			}
		})
	}
}

func TestWebSocketWriteAndClose(t *testing.T) {
	for name, r := range map[string]*Replacer{"patterns": testReplacer(), "none": Compile(nil)} {
		t.Run(name, func(t *testing.T) {
			up := &rwc{Reader: bytes.NewReader(nil)}
			ws := r.WebSocket(up)
			client := []byte{0x81, 0x85, 1, 2, 3, 4, 'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1}
			if n, err := ws.Write(client); n != len(client) || err != nil {
				t.Fatalf("got %d, %v, want %d, nil", n, err, len(client))
			}
			if !bytes.Equal(up.w.Bytes(), client) {
				t.Errorf("got %x written upstream, want %x", up.w.Bytes(), client)
			}
			_ = ws.Close()
			_ = ws.Close()
			if up.closed != 1 {
				t.Errorf("got %d closes, want 1", up.closed)
			}
		})
	}
}

func TestStripWebSocketExtensions(t *testing.T) {
	h := http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}, "Upgrade": {"websocket"}}
	StripWebSocketExtensions(h)
	if _, ok := h["Sec-Websocket-Extensions"]; ok || h.Get("Upgrade") != "websocket" {
		t.Errorf("got %v, want only the extensions removed", h)
	}
}

func TestResponseUpgrade(t *testing.T) {
	frames := serverFrame(wsFrame{true, opText, "hello " + testKey}, 0, false)
	tests := []struct {
		name    string
		header  http.Header
		wantErr bool
	}{
		{"websocket", http.Header{"Upgrade": {"WebSocket"}}, false},
		// keyhole strips the extension offer, so any extension in the
		// answer is one the client never offered; refused whether or
		// not the request carried a secret.
		{"websocket with an unoffered extension", http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Extensions": {"permessage-deflate"}}, true},
		{"websocket with an unknown extension", http.Header{"Upgrade": {"websocket"}, "Sec-Websocket-Extensions": {"x-custom"}}, true},
		{"other protocol", http.Header{"Upgrade": {"h2c"}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &rwc{Reader: bytes.NewReader(frames)}
			resp := &http.Response{StatusCode: http.StatusSwitchingProtocols, Header: tc.header, Body: up}
			b, err := testReplacer().Response(resp, http.MethodGet)
			if tc.wantErr {
				if !errors.Is(err, ErrUnscrubbableEncoding) {
					t.Fatalf("got %v, want ErrUnscrubbableEncoding", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if _, err := b.Write([]byte("client")); err != nil || up.w.String() != "client" {
				t.Errorf("Write: got %v, upstream %q, want nil, %q", err, up.w.String(), "client")
			}
			out, _ := io.ReadAll(resp.Body)
			want := serverFrame(wsFrame{true, opText, "hello <<STRIPE>>"}, 0, false)
			if !bytes.Equal(out, want) {
				t.Errorf("body: %s", describeDiff(out, want))
			}
			if err := b.Close(); err != nil || up.closed != 1 {
				t.Errorf("Close: got %v, %d closes, want nil, 1", err, up.closed)
			}
		})
	}
	t.Run("not an upgrade body", func(t *testing.T) {
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(nil))}
		b, _ := testReplacer().Response(resp, http.MethodGet)
		if _, err := b.Write([]byte("x")); err == nil {
			t.Errorf("got nil, want an error")
		}
	})
}
