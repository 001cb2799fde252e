package pgfront

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"keyhole/agentauth"
	"keyhole/audit"
	"keyhole/rules"
	"keyhole/secret"
	"keyhole/tokens"
)

// session is one agent's connection and its upstream.
type session struct {
	s      *Server
	id     string
	client net.Conn
	be     *pgproto3.Backend

	// Who, as checked at login and re-checked when the rules change.
	agent, pass string
	grant       *tokens.Grant
	handle      string
	db          *rules.Database
	checked     *rules.Set
	role        string // the temporary role; "" for the configured user
	realUser    string // to keep out of what the agent reads

	up     *pgconn.HijackedConn
	rs     *relayState
	tr     tracker
	cancel *cancelKey

	stmts   map[string]string // prepared statement → text
	portals map[string]string // portal → text
	skip    bool              // dropping messages up to Sync after a refusal

	endOnce sync.Once
	ended   chan struct{}
}

// handle runs one client connection from its first byte to its end.
func (s *Server) handle(raw net.Conn, listen string) {
	c := raw
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(s.cfg.LoginTimeout))
	secure := false
	for {
		msg, err := readStartup(c)
		if err != nil {
			if errors.Is(err, errBadStartup) {
				s.log.Debug("postgres front: bad startup packet", "remote", raw.RemoteAddr().String(), "error", err)
				writeMsg(c, refuse(codeProtocolViolation, "bad_request", "this is a PostgreSQL port; %v", err).response(true, ""))
			}
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if secure {
				return
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return
			}
			tc := tls.Server(c, s.tlsConfig(listen))
			if err := tc.Handshake(); err != nil {
				s.log.Debug("postgres front: TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
				return
			}
			c, secure = tc, true
		case *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.CancelRequest:
			s.forwardCancel(m)
			return
		case *pgproto3.StartupMessage:
			s.login(c, raw, listen, secure, m)
			return
		}
	}
}

// tlsConfig serves a leaf of keyhole's CA for the name the client asked
// for (SNI), else for the listen address's host, or, when that is 0.0.0.0
// or ::, for the local address the client reached.
func (s *Server) tlsConfig(listen string) *tls.Config {
	host, _, _ := net.SplitHostPort(listen)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			name := host
			if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() && hello.Conn != nil {
				if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
					name = ap.Addr().Unmap().String()
				}
			}
			if hello.ServerName != "" {
				if h, err := rules.CanonicalHost(hello.ServerName); err == nil {
					name = h
				}
			}
			return s.authority.Leaf(name)
		},
	}
}

// isLoopback reports whether the client connects from this machine.
func isLoopback(c net.Conn) bool {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// passthrough lists the startup parameters a client may set upstream; the
// rest (options, replication, ...) are dropped: "options" could carry
// -c default_transaction_read_only=off.
var passthrough = []string{"application_name", "client_encoding", "datestyle", "timezone", "extra_float_digits", "intervalstyle", "search_path"}

// login authenticates the agent, logs in upstream and runs the session.
func (s *Server) login(c, raw net.Conn, listen string, secure bool, m *pgproto3.StartupMessage) {
	start := time.Now()
	set := s.rules.Load()
	ss := &session{s: s, id: s.ids.Next(), client: c, checked: set, ended: make(chan struct{})}
	ss.be = pgproto3.NewBackend(c, c)
	// Until the agent is known, a message is at most a password: a
	// token is a few hundred bytes.
	ss.be.SetMaxBodyLen(maxPasswordMessage)
	user, dbname := m.Parameters["user"], m.Parameters["database"]
	if dbname == "" {
		dbname = user
	}
	ss.handle, ss.agent = dbname, user
	if !set.HasAgents() {
		ss.agent = rules.AnonymousAgent
	}
	refused := func(r *refusal) {
		ss.audit(&audit.Statement{Time: start, Status: r.code, Decision: audit.Deny, Reason: r.reason, Duration: time.Since(start)})
		writeMsg(c, r.response(true, ss.id))
	}
	for _, d := range set.DatabasesAt(listen) {
		if d.Name == dbname {
			ss.db = d
		}
	}
	switch {
	case ss.db == nil:
		refused(refuse(codeInvalidCatalog, "unknown_secret", "there is no database handle %q here; connect with dbname set to a handle your agent may use", truncate(dbname, 64)))
		return
	case m.Parameters["replication"] != "":
		refused(refuse(codeInsufficientPriv, "agent_not_allowed", "replication connections are not relayed"))
		return
	case !secure && !isLoopback(raw):
		refused(refuse(codeInvalidAuthSpec, "plaintext_not_allowed", "connect with TLS (sslmode=require or verify-full): keyhole takes a token as password only over TLS or on loopback"))
		return
	}
	if set.HasAgents() {
		pass, ok := ss.readPassword()
		if !ok {
			return
		}
		id, err := s.verifier.Verify(set, user, pass, start)
		if id.Agent == nil {
			ss.agent = truncate(user, 64)
		}
		ss.grant = id.Grant
		if r := authRefusal(ss.agent, err); r != nil {
			refused(r)
			return
		}
		ss.pass = pass
	}
	if r := ss.allowed(set); r != nil {
		refused(r)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LoginTimeout)
	defer cancel()
	conn, r := ss.dialUpstream(ctx, set, m.Parameters)
	if r != nil {
		refused(r)
		return
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(context.Background())
		refused(refuse(codeConnectionFailure, "upstream_unreachable", "the upstream session could not be taken over"))
		return
	}
	ss.up = hc
	if !s.register(ss) {
		hc.Conn.Close()
		writeMsg(c, refuse(codeAdminShutdown, "shutting_down", "keyhole is shutting down; reconnect later").response(true, ss.id))
		return
	}
	defer s.unregister(ss)
	_ = c.SetDeadline(time.Time{})
	ss.be.SetMaxBodyLen(s.cfg.MaxMessageBytes)
	ss.run()
}

// maxPasswordMessage bounds the messages of a client not yet
// authenticated.
const maxPasswordMessage = 16 << 10

// readPassword asks for the token as a cleartext password.
func (ss *session) readPassword() (string, bool) {
	writeMsg(ss.client, &pgproto3.AuthenticationCleartextPassword{})
	if err := ss.be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return "", false
	}
	msg, err := ss.be.Receive()
	if err != nil {
		return "", false
	}
	pm, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		writeMsg(ss.client, refuse(codeProtocolViolation, "proxy_auth_required", "expected a password message").response(true, ss.id))
		return "", false
	}
	return pm.Password, true
}

// allowed checks the agent's databases policy and the token's secrets
// caveat, which narrows database handles too.
func (ss *session) allowed(set *rules.Set) *refusal {
	if !set.HasAgents() {
		return nil
	}
	a := set.Agents[ss.agent]
	if a == nil || !a.MayUseDatabase(ss.handle) {
		return refuse(codeInsufficientPriv, "agent_not_allowed", "agent %s may not use database %s; ask the operator to add it to the agent's databases", ss.agent, ss.handle)
	}
	if ss.grant != nil && !ss.grant.AllowsSecret(ss.handle) {
		return refuse(codeInsufficientPriv, "agent_not_allowed", "the token of agent %s does not allow database %s; ask for a token minted with --secrets %s", ss.agent, ss.handle, ss.handle)
	}
	return nil
}

// authRefusal maps an agentauth error to the agent's refusal.
func authRefusal(agent string, err error) *refusal {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, agentauth.ErrExpired):
		return refuse(codeInvalidPassword, "token_expired", "the token of agent %s has expired; ask for a new one", agent)
	case errors.Is(err, agentauth.ErrRevoked):
		return refuse(codeInvalidPassword, "token_revoked", "the token of agent %s has been revoked", agent)
	case errors.Is(err, agentauth.ErrStateUnavailable):
		return refuse(codeInvalidPassword, "state_unavailable", "the shared state is unreachable, so a revocation of the token of agent %s could have been missed; retry later", agent)
	}
	return refuse(codeInvalidPassword, "proxy_auth_required", "authentication failed: connect with user = your agent name and password = your keyhole token")
}

// dialUpstream logs in to the handle's upstream with the real credentials,
// or as the task's temporary role.
func (ss *session) dialUpstream(ctx context.Context, set *rules.Set, client map[string]string) (*pgconn.PgConn, *refusal) {
	d := ss.db
	params := map[string]string{}
	for k, v := range client {
		if lk := strings.ToLower(k); contains(passthrough, lk) {
			params[lk] = v
		}
	}
	if d.ReadOnly {
		params["default_transaction_read_only"] = "on"
	}
	user, password, err := d.Credentials()
	if err != nil {
		ss.s.log.Warn("postgres front: database credentials unavailable", "database", d.Name, "error", err)
		return nil, refuse(codeConnectionFailure, "secret_unavailable", "the credentials of database %s cannot be read; the operator must fix their source", d.Name)
	}
	ss.realUser = user.Reveal()
	if d.TemporaryRoles != nil {
		var notAfter time.Time
		task := "static"
		if ss.grant != nil {
			notAfter, task = ss.grant.Expires, ss.grant.ID
		}
		r, created, err := ss.s.roles.Acquire(ctx, d, ss.agent, task, notAfter)
		if err != nil {
			ss.s.log.Warn("postgres front: temporary role not created", "database", d.Name, "agent", ss.agent, "error", err)
			return nil, loginRefusal(d, err)
		}
		if created {
			ss.s.roleCreated(r, ss)
		}
		ss.role = r.Name
		user, password = secret.New([]byte(r.Name)), r.Password
	}
	conn, err := ss.s.connect(ctx, set, d, user, password, params)
	if err != nil {
		ss.s.log.Warn("postgres front: upstream login failed", "database", d.Name, "agent", ss.agent, "error", err)
		return nil, loginRefusal(d, err)
	}
	return conn, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// truncate cuts s to n bytes, for names from an unauthenticated client.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// writeMsg writes one message straight to w (before the session's
// buffered writers exist).
func writeMsg(w net.Conn, msg pgproto3.BackendMessage) {
	b, err := msg.Encode(nil)
	if err == nil {
		_, _ = w.Write(b)
	}
}

// audit writes a statement record of the session.
func (ss *session) audit(st *audit.Statement) {
	st.RequestID, st.Agent, st.Database, st.Role = ss.id, ss.agent, ss.handle, ss.role
	if ss.grant != nil {
		st.TokenID = ss.grant.ID
	}
	if st.Decision == "" {
		st.Decision = audit.Allow
	}
	_ = ss.s.audit.Statement(st)
}
