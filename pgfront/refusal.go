package pgfront

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A refusal is keyhole's own answer to an agent: an ErrorResponse whose
// message says what happened and what to do, and whose detail carries the
// reason word of CONTRACT.md (the same words as the proxy's refusals) and the
// session's id. It never holds a credential, the real user name or an
// upstream's own message.
type refusal struct {
	code   string // SQLSTATE
	reason string
	msg    string
}

// SQLSTATEs keyhole answers with (PostgreSQL's errcodes.txt).
const (
	codeInvalidPassword   = "28P01" // invalid_password: the token is wrong, expired or revoked
	codeInvalidAuthSpec   = "28000" // invalid_authorization_specification: no TLS, no password
	codeInsufficientPriv  = "42501" // insufficient_privilege: the agent may not use the handle
	codeInvalidCatalog    = "3D000" // invalid_catalog_name: no such handle
	codeConnectionFailure = "08001" // sqlclient_unable_to_establish_sqlconnection: upstream down, bad cert, bad credentials
	codeProtocolViolation = "08P01" // protocol_violation
	codeReadOnly          = "25006" // read_only_sql_transaction
	codeTooManyConns      = "53300" // too_many_connections
	codeAdminShutdown     = "57P01" // admin_shutdown
)

func refuse(code, reason, format string, args ...any) *refusal {
	return &refusal{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// response returns the ErrorResponse, FATAL when the session ends with it.
func (r *refusal) response(fatal bool, sessionID string) *pgproto3.ErrorResponse {
	sev := "ERROR"
	if fatal {
		sev = "FATAL"
	}
	return &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                r.code,
		Message:             "keyhole: " + r.msg,
		Detail:              "reason: " + r.reason + "; request_id: " + sessionID,
	}
}
