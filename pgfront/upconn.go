package pgfront

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"keyhole/rules"
	"keyhole/secret"
	"keyhole/upstream"
)

// upstreamConfig returns the pgconn configuration of a login to d as
// user: every field set here, none from the environment that matters
// (PGOPTIONS, PGSSLMODE, PGTARGETSESSIONATTRS, a .pgpass file are all
// overridden), SCRAM-SHA-256 required, TLS as d says, and dialing through
// the rules' pins and block_private.
func (s *Server) upstreamConfig(set *rules.Set, d *rules.Database, user, password secret.Value, params map[string]string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("pgfront: upstream config: %w", err)
	}
	cfg.Host = d.UpstreamHost
	cfg.Port = uint16(d.UpstreamPort)
	cfg.Database = d.DBName
	cfg.User = user.Reveal()
	cfg.Password = password.Reveal()
	cfg.ConnectTimeout = s.cfg.DialTimeout
	cfg.Fallbacks = nil
	cfg.ValidateConnect = nil
	cfg.AfterConnect = nil
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	cfg.SSLNegotiation = "postgres"
	// A server that asks for the password in clear (or MD5) is refused:
	// only SCRAM keeps the password itself off the wire.
	cfg.RequireAuth = "scram-sha-256"
	cfg.RuntimeParams = params
	cfg.TLSConfig = s.upstreamTLS(d)
	cfg.LookupFunc = func(ctx context.Context, host string) ([]string, error) {
		return []string{host}, nil // DialFunc resolves, checks and dials itself
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		targets, err := upstream.Resolve(ctx, nil, set, d.UpstreamHost, d.UpstreamPort)
		if err != nil {
			return nil, err
		}
		nd := &net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30e9}
		return upstream.Dial(ctx, nd, targets)
	}
	return cfg, nil
}

// upstreamTLS is the TLS configuration of d's mode: verify-full checks the
// chain and the host name, require checks the chain (like libpq's
// verify-ca), disable is plain TCP. Nothing accepts an unverified chain.
func (s *Server) upstreamTLS(d *rules.Database) *tls.Config {
	switch d.TLS {
	case rules.TLSDisable:
		return nil
	case rules.TLSRequire:
		roots := s.roots
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Go checks the name together with the chain; the chain alone
			// is checked here, against the same roots.
			InsecureSkipVerify: true, //nolint:gosec // VerifyConnection verifies the chain
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("the server sent no certificate")
				}
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
				return err
			},
		}
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: d.UpstreamHost, RootCAs: s.roots}
}

// connect logs in to d's upstream as user.
func (s *Server) connect(ctx context.Context, set *rules.Set, d *rules.Database, user, password secret.Value, params map[string]string) (*pgconn.PgConn, error) {
	cfg, err := s.upstreamConfig(set, d, user, password, params)
	if err != nil {
		return nil, err
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// adminConnect opens a session with d's configured credentials, for
// temporary roles.
func (s *Server) adminConnect(ctx context.Context, d *rules.Database) (*pgconn.PgConn, error) {
	user, password, err := d.Credentials()
	if err != nil {
		return nil, err
	}
	return s.connect(ctx, s.rules.Load(), d, user, password, map[string]string{"application_name": "keyhole"})
}

// loginRefusal turns a failed upstream login into what the agent is told:
// a fixed sentence per kind of failure, never the server's own message or
// pgconn's (both can name the real user).
func loginRefusal(d *rules.Database, err error) *refusal {
	var pe *upstream.PrivateAddressError
	var pg *pgconn.PgError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &pe):
		return refuse(codeInsufficientPriv, "private_address",
			"the upstream of database %s resolves to a private address, which block_private refuses; the operator must pin it in resolve or allow private addresses", d.Name)
	case errors.As(err, &pg) && (pg.Code == "28P01" || pg.Code == "28000"):
		return refuse(codeConnectionFailure, "secret_unavailable",
			"the upstream server of database %s refused keyhole's credentials; the operator must fix them (this is not about your token)", d.Name)
	case errors.As(err, &pg):
		return refuse(codeConnectionFailure, "upstream_unreachable",
			"the upstream server of database %s refused the session (SQLSTATE %s)", d.Name, pg.Code)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		return refuse(codeConnectionFailure, "upstream_tls",
			"the upstream server of database %s did not present a certificate keyhole trusts for %s", d.Name, d.UpstreamHost)
	case isTLSRefused(err):
		return refuse(codeConnectionFailure, "upstream_tls",
			"the upstream server of database %s does not speak TLS, which its tls mode %s requires", d.Name, d.TLS)
	}
	return refuse(codeConnectionFailure, "upstream_unreachable",
		"the upstream server of database %s (%s) cannot be reached; try again later", d.Name, net.JoinHostPort(d.UpstreamHost, strconv.Itoa(d.UpstreamPort)))
}

// isTLSRefused reports pgconn's error for a server that answered the
// SSLRequest with 'N'.
func isTLSRefused(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "server refused TLS connection" {
			return true
		}
	}
	return false
}
