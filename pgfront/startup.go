package pgfront

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The startup packet: the only message without a type byte. keyhole reads
// it itself, bounded, before anything else touches the connection, so that
// a garbage first packet or a huge declared length costs nothing: the length
// is checked before a byte of the body is read.

// Bounds of a startup packet's declared length, as in PostgreSQL's own
// server (MAX_STARTUP_PACKET_LENGTH).
const (
	minStartupLen = 8
	maxStartupLen = 10000
)

// Request codes of the startup packet (PostgreSQL's pqcomm.h).
const (
	protocol30    = 196608
	sslRequest    = 80877103
	gssEncRequest = 80877104
	cancelRequest = 80877102
)

// errBadStartup is a first packet that is not a PostgreSQL startup packet.
var errBadStartup = errors.New("not a PostgreSQL startup packet")

// readStartup reads one startup packet from r: a StartupMessage,
// SSLRequest, GSSEncRequest or CancelRequest.
func readStartup(r io.Reader) (pgproto3.FrontendMessage, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < minStartupLen || n > maxStartupLen {
		return nil, fmt.Errorf("%w: declared length %d", errBadStartup, n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return parseStartup(body)
}

// parseStartup decodes the body of a startup packet (after its length).
func parseStartup(body []byte) (pgproto3.FrontendMessage, error) {
	var msg interface {
		pgproto3.FrontendMessage
	}
	switch code := binary.BigEndian.Uint32(body); code {
	case protocol30:
		msg = &pgproto3.StartupMessage{}
	case sslRequest:
		msg = &pgproto3.SSLRequest{}
	case gssEncRequest:
		msg = &pgproto3.GSSEncRequest{}
	case cancelRequest:
		msg = &pgproto3.CancelRequest{}
	default:
		if code>>16 == 3 {
			return nil, fmt.Errorf("%w: protocol 3.%d is not supported (want 3.0)", errBadStartup, code&0xffff)
		}
		return nil, fmt.Errorf("%w: unknown request code", errBadStartup)
	}
	if err := msg.Decode(body); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadStartup, err)
	}
	if c, ok := msg.(*pgproto3.CancelRequest); ok && len(c.SecretKey) != 4 {
		return nil, fmt.Errorf("%w: cancel key of %d bytes", errBadStartup, len(c.SecretKey))
	}
	return msg, nil
}
