package pgfront

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgproto3"

	"keyhole/rules"
	"keyhole/upstream"
)

// Cancel requests arrive on a new connection with the BackendKeyData the
// client was given. keyhole gives out its own process id and key, so that
// the agent never learns the server's, and a cancel request is forwarded
// only when its key matches: then keyhole sends the server's own key to the
// server, the same way it dials for a session.

type cancelKey struct {
	pid uint32
	key [4]byte
	ss  *session
}

// newCancelKey makes and registers the session's key.
func (s *Server) newCancelKey(ss *session) *cancelKey {
	ck := &cancelKey{ss: ss}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])                               // never fails on Linux
		ck.pid = binary.BigEndian.Uint32(b[:4]) &^ (1 << 31) // a positive int32, like a pid
		copy(ck.key[:], b[4:])
		if ck.pid != 0 && s.cancels[ck.pid] == nil {
			s.cancels[ck.pid] = ck
			return ck
		}
	}
}

// forwardCancel sends the server the cancel request of the session whose
// key m carries; anything else is dropped silently, as PostgreSQL does.
func (s *Server) forwardCancel(m *pgproto3.CancelRequest) {
	s.mu.Lock()
	ck := s.cancels[m.ProcessID]
	s.mu.Unlock()
	if ck == nil || subtle.ConstantTimeCompare(ck.key[:], m.SecretKey) != 1 {
		return
	}
	ss := ck.ss
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DialTimeout)
	defer cancel()
	// The rules in force now: their pins say where the server is.
	if err := s.sendCancel(ctx, s.rules.Load(), ss.db, ss.up.PID, ss.up.SecretKey); err != nil {
		s.log.Warn("postgres front: cancel request not delivered", "database", ss.handle, "error", err)
	}
}

func (s *Server) sendCancel(ctx context.Context, set *rules.Set, d *rules.Database, pid uint32, key []byte) error {
	targets, err := upstream.Resolve(ctx, nil, set, d.UpstreamHost, d.UpstreamPort)
	if err != nil {
		return err
	}
	var c net.Conn
	if c, err = upstream.Dial(ctx, &net.Dialer{Timeout: s.cfg.DialTimeout}, targets); err != nil {
		return err
	}
	defer func() { c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if cfg := s.upstreamTLS(d); cfg != nil {
		req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
		if _, err := c.Write(req); err != nil {
			return err
		}
		var answer [1]byte
		if _, err := io.ReadFull(c, answer[:]); err != nil {
			return err
		}
		if answer[0] != 'S' {
			return errors.New("the server refused TLS for the cancel request")
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c = tc
	}
	req, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: key}).Encode(nil)
	if _, err := c.Write(req); err != nil {
		return err
	}
	// The server answers by closing the connection.
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<10))
	return nil
}
