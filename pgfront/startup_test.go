package pgfront

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

func packet(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	return append(b, body...)
}

func TestReadStartup(t *testing.T) {
	startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: protocol30, Parameters: map[string]string{"user": "analyst", "database": "DB_PROD"}}).Encode(nil)
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	huge := binary.BigEndian.AppendUint32(nil, 1<<30)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"startup", startup, true},
		{"ssl request", ssl, true},
		{"1 GiB declared length", append(huge, 0, 3, 0, 0), false},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"too short", packet([]byte{0, 3}), false},
		{"protocol 2", packet([]byte{0, 2, 0, 0, 'u', 0, 0}), false},
		{"protocol 3.2", packet([]byte{0, 3, 0, 2, 0}), false},
		{"unterminated parameters", packet([]byte{0, 3, 0, 0, 'u', 's', 'e', 'r'}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := readStartup(bytes.NewReader(tc.in))
			if tc.ok != (err == nil) {
				t.Fatalf("got %T, %v; want ok=%v", msg, err, tc.ok)
			}
			if err != nil && !errors.Is(err, errBadStartup) {
				t.Errorf("got %v, want errBadStartup", err)
			}
		})
	}
}

func FuzzReadStartup(f *testing.F) {
	startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: protocol30, Parameters: map[string]string{"user": "a", "database": "D"}}).Encode(nil)
	cancel, _ := (&pgproto3.CancelRequest{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}}).Encode(nil)
	f.Add(startup)
	f.Add(cancel)
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := readStartup(bytes.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a packet that parses the same.
		enc, err := msg.Encode(nil)
		if err != nil {
			t.Fatalf("re-encode %T: %v", msg, err)
		}
		again, err := readStartup(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("re-encoded %T does not parse: %v", msg, err)
		}
		if sm, ok := msg.(*pgproto3.StartupMessage); ok {
			if len(sm.Parameters) != len(again.(*pgproto3.StartupMessage).Parameters) {
				t.Fatalf("parameters changed")
			}
		}
	})
}
