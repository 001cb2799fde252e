package pgfront

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"keyhole/audit"
	"keyhole/pgroles"
)

// maxStatements bounds the prepared statements whose text a session keeps
// for the audit; more still run, audited by name only.
const maxStatements = 4096

// relayState is what the two relay goroutines share besides the tracker.
type relayState struct {
	cw, uw   *wire
	txStatus atomic.Uint32 // the last ReadyForQuery's status byte
}

// run greets the client as the server would and relays the session until
// either side ends it.
func (ss *session) run() {
	rs := &relayState{cw: newWire(ss.client), uw: newWire(ss.up.Conn)}
	ss.rs = rs
	defer rs.cw.stop()
	defer rs.uw.stop()
	ss.stmts, ss.portals = map[string]string{}, map[string]string{}
	_ = rs.cw.send(&pgproto3.AuthenticationOk{}, false)
	for k, v := range ss.up.ParameterStatuses {
		_ = rs.cw.send(&pgproto3.ParameterStatus{Name: k, Value: ss.param(k, v)}, false)
	}
	ss.cancel = ss.s.newCancelKey(ss)
	_ = rs.cw.send(&pgproto3.BackendKeyData{ProcessID: ss.cancel.pid, SecretKey: ss.cancel.key[:]}, false)
	rs.txStatus.Store(uint32(ss.up.TxStatus))
	if err := rs.cw.send(&pgproto3.ReadyForQuery{TxStatus: ss.up.TxStatus}, true); err != nil {
		ss.end(nil)
		return
	}
	go ss.fromUpstream()
	ss.fromClient()
	ss.end(nil)
	<-ss.ended
}

// param is the value of a ParameterStatus as the agent sees it.
func (ss *session) param(name, value string) string {
	if name == "session_authorization" {
		if ss.role != "" {
			return ss.role
		}
		return ss.agent
	}
	return value
}

// fromClient relays the client's messages, checking every statement.
func (ss *session) fromClient() {
	uw := ss.rs.uw
	for {
		msg, err := ss.be.Receive()
		if err != nil {
			return
		}
		now := time.Now()
		if ss.skip {
			if _, ok := msg.(*pgproto3.Sync); !ok {
				continue
			}
			ss.skip = false
		}
		var s step
		query, flush, statement := "", false, false
		switch m := msg.(type) {
		case *pgproto3.Query:
			s, query, flush, statement = stepQuery, m.String, true, true
		case *pgproto3.Parse:
			s, query, statement = stepParse, m.Query, true
			if _, ok := ss.stmts[m.Name]; ok || len(ss.stmts) < maxStatements {
				ss.stmts[m.Name] = bounded(m.Query)
			}
		case *pgproto3.Bind:
			// Bind plans the statement, so it can fail with the
			// statement's own error (SELECT 1/0 fails here).
			s, query, statement = stepBind, ss.statementText(m.PreparedStatement), true
			if len(ss.portals) >= maxStatements {
				clear(ss.portals)
			}
			ss.portals[m.DestinationPortal] = query
		case *pgproto3.Execute:
			s, query, statement = stepExecute, ss.portals[m.Portal], true
		case *pgproto3.Describe:
			s = stepDescribe
			if m.ObjectType == 'S' {
				query = ss.statementText(m.Name)
			}
		case *pgproto3.Close:
			s = stepClose
			if m.ObjectType == 'S' {
				delete(ss.stmts, m.Name)
			} else {
				delete(ss.portals, m.Name)
			}
		case *pgproto3.Sync:
			s, flush = stepSync, true
		case *pgproto3.FunctionCall:
			s, query, flush, statement = stepFunction, "(function call)", true, true
		case *pgproto3.Flush, *pgproto3.CopyDone, *pgproto3.CopyFail:
			if uw.send(msg, true) != nil {
				return
			}
			continue
		case *pgproto3.CopyData:
			if uw.send(msg, false) != nil {
				return
			}
			continue
		case *pgproto3.Terminate:
			_ = uw.send(msg, true)
			return
		default:
			ss.end(refuse(codeProtocolViolation, "bad_request", "unexpected message %T", msg))
			return
		}
		if statement {
			if r := ss.recheck(now); r != nil {
				ss.audit(&audit.Statement{Time: now, Query: query, Status: r.code, Decision: audit.Deny, Reason: r.reason})
				ss.end(r)
				return
			}
			if ss.db.ReadOnly && ss.db.TemporaryRoles == nil && (s == stepQuery || s == stepParse) && breaksReadOnly(query) {
				ss.refuseStatement(now, query, s == stepParse)
				continue
			}
		}
		if !ss.tr.push(s, bounded(query), now) {
			ss.end(refuse(codeProtocolViolation, "bad_request", "more than %d messages in flight; read the answers", maxPending))
			return
		}
		if uw.send(msg, flush) != nil {
			return
		}
	}
}

// statementText is the audited text of a prepared statement.
func (ss *session) statementText(name string) string {
	if q, ok := ss.stmts[name]; ok {
		return q
	}
	return "(prepared statement " + truncate(name, 64) + ")"
}

// bounded cuts a statement to what the audit keeps.
func bounded(q string) string {
	if len(q) > audit.MaxQuery {
		return strings.Clone(q[:audit.MaxQuery])
	}
	return strings.Clone(q) // the message's buffer is reused
}

// recheck re-verifies the agent before a statement: the minted token's
// expiry and revocation always, everything when the rules changed.
func (ss *session) recheck(now time.Time) *refusal {
	set := ss.s.rules.Load()
	if set == ss.checked {
		return authRefusal(ss.agent, ss.s.verifier.Live(ss.grant, now))
	}
	if set.HasAgents() != ss.checked.HasAgents() || set.Databases[ss.handle] == nil {
		return refuse(codeInsufficientPriv, "agent_not_allowed", "the rules changed and no longer allow this session; reconnect")
	}
	if set.HasAgents() {
		id, err := ss.s.verifier.Verify(set, ss.agent, ss.pass, now)
		if r := authRefusal(ss.agent, err); r != nil {
			return r
		}
		ss.grant = id.Grant
	}
	if r := ss.allowed(set); r != nil {
		return r
	}
	ss.checked = set
	return nil
}

// refuseStatement answers a statement that would turn read-only mode off
// with an error, in its place in the answer stream: once the server has
// answered everything before it.
func (ss *session) refuseStatement(now time.Time, query string, extended bool) {
	r := refuse(codeReadOnly, "read_only", "database %s is read-only: statements that change transaction_read_only, READ WRITE transactions and set_config are refused", ss.handle)
	ss.audit(&audit.Statement{Time: now, Query: query, Status: r.code, Decision: audit.Deny, Reason: r.reason})
	if extended {
		_ = ss.rs.uw.send(&pgproto3.Flush{}, true)
	} else {
		_ = ss.rs.uw.flush()
	}
	for ss.tr.busy() {
		select {
		case <-ss.ended:
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
	if extended {
		ss.skip = true // up to the next Sync, which the server answers
		_ = ss.rs.cw.send(r.response(false, ss.id), true)
		return
	}
	_ = ss.rs.cw.send(r.response(false, ss.id), false)
	_ = ss.rs.cw.send(&pgproto3.ReadyForQuery{TxStatus: byte(ss.rs.txStatus.Load())}, true)
}

// fromUpstream relays the server's messages, auditing each statement's
// outcome.
func (ss *session) fromUpstream() {
	defer ss.end(nil)
	cw := ss.rs.cw
	for {
		msg, err := ss.up.Frontend.Receive()
		if err != nil {
			return
		}
		now := time.Now()
		flush := false
		switch m := msg.(type) {
		case *pgproto3.DataRow, *pgproto3.CopyData, *pgproto3.ParameterDescription:
		case *pgproto3.ParseComplete:
			ss.tr.answered(stepParse)
		case *pgproto3.BindComplete:
			ss.tr.answered(stepBind)
		case *pgproto3.CloseComplete:
			ss.tr.answered(stepClose)
		case *pgproto3.RowDescription, *pgproto3.NoData:
			ss.tr.answered(stepDescribe)
		case *pgproto3.CommandComplete:
			ss.finished(ss.tr.complete(string(m.CommandTag), now))
		case *pgproto3.EmptyQueryResponse, *pgproto3.PortalSuspended, *pgproto3.FunctionCallResponse:
			ss.finished(ss.tr.complete("", now))
		case *pgproto3.ErrorResponse:
			ss.scrub(m)
			ss.finished(ss.tr.fail(m.Code, now))
			flush = true
		case *pgproto3.NoticeResponse:
			ss.scrub((*pgproto3.ErrorResponse)(m))
			flush = true
		case *pgproto3.ReadyForQuery:
			ss.tr.ready()
			ss.rs.txStatus.Store(uint32(m.TxStatus))
			flush = true
		case *pgproto3.ParameterStatus:
			m.Value = ss.param(m.Name, m.Value)
			if ss.db.ReadOnly && m.Name == "default_transaction_read_only" && m.Value != "on" {
				r := refuse(codeReadOnly, "read_only", "database %s is read-only and the session turned read-only mode off; it is closed", ss.handle)
				ss.audit(&audit.Statement{Time: now, Status: r.code, Decision: audit.Deny, Reason: r.reason})
				ss.end(r)
				return
			}
			flush = true
		default:
			flush = true // CopyInResponse, CopyOutResponse, NotificationResponse, ...
		}
		if cw.send(msg, flush) != nil {
			return
		}
	}
}

// finished audits a statement's outcome.
func (ss *session) finished(o outcome, ok bool) {
	if ok {
		ss.audit(&audit.Statement{Time: o.start, Query: o.query, Rows: o.rows, Status: o.status, Duration: o.dur})
	}
}

// scrub replaces the real user name in a server error or notice by the
// agent's name (with a temporary role the server names the role, which the
// agent may see).
func (ss *session) scrub(m *pgproto3.ErrorResponse) {
	u := ss.realUser
	if ss.role != "" || len(u) < 2 {
		return
	}
	for _, f := range []*string{&m.Message, &m.Detail, &m.Hint, &m.Where, &m.InternalQuery} {
		if strings.Contains(*f, u) {
			*f = strings.ReplaceAll(*f, u, ss.agent)
		}
	}
}

// end closes the session once, telling the client why when r is set.
func (ss *session) end(r *refusal) {
	ss.endOnce.Do(func() {
		if r != nil && ss.rs != nil {
			_ = ss.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = ss.rs.cw.send(r.response(true, ss.id), true)
		}
		if ss.rs != nil {
			_ = ss.up.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = ss.rs.uw.send(&pgproto3.Terminate{}, true)
		}
		ss.client.Close()
		if ss.up != nil {
			ss.up.Conn.Close()
		}
		close(ss.ended)
	})
}

// roleCreated audits which role serves which task.
func (s *Server) roleCreated(r *pgroles.Role, ss *session) {
	_ = s.audit.Event(time.Now(), "temporary_role_created", slog.String("protocol", audit.ProtocolPostgres),
		slog.String("database", r.Database), slog.String("role", r.Name), slog.String("agent", ss.agent),
		slog.String("token_id", r.Task), slog.String("expires_at", r.Expires.UTC().Format(time.RFC3339)))
}
