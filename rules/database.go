package rules

import (
	"slices"
	"strings"
	"time"

	"keyhole/secret"
)

// Database is one PostgreSQL handle of the databases section: where agents
// connect, the upstream server keyhole logs in to with the real credentials,
// and what a session may do there.
type Database struct {
	// Name is the handle: the database name agents put in their startup
	// message, and the name a token's secrets caveat must allow.
	Name string
	// Listen is the "host:port" agents connect to. Several handles may
	// share one address; the startup's database name picks the handle.
	Listen string
	// ListenHost is Listen's host, the name keyhole's TLS leaf is for.
	ListenHost string
	// Upstream is the PostgreSQL server, "host:port" (port 5432 when the
	// file gave none); UpstreamHost is its canonical host, the name its
	// certificate must carry under TLSVerifyFull and the host a pin or
	// block_private is checked against.
	Upstream     string
	UpstreamHost string
	UpstreamPort int
	// DBName is the upstream database to log in to.
	DBName string
	// User and Password are the sources of the real credentials. With
	// TemporaryRoles they are the administrator that creates the roles.
	User, Password Source
	// TLS is how keyhole talks to the upstream; TLSVerifyFull by default.
	TLS TLSMode
	// ReadOnly makes every session read-only.
	ReadOnly bool
	// TemporaryRoles, when not nil, gives every agent task its own role.
	TemporaryRoles *TemporaryRoles
	// Line is the line of the handle's name in the rules file.
	Line int

	user, password       secret.Value
	userErr, passwordErr error
}

// Credentials returns the real user and password as read at load, or the
// error that prevented reading one of them (it names the source, never a
// value).
func (d *Database) Credentials() (user, password secret.Value, err error) {
	if d.userErr != nil {
		return secret.Value{}, secret.Value{}, d.userErr
	}
	if d.passwordErr != nil {
		return secret.Value{}, secret.Value{}, d.passwordErr
	}
	return d.user, d.password, nil
}

// TLSMode is how keyhole connects to an upstream PostgreSQL server.
type TLSMode string

// TLS modes. There is no mode that accepts an unverified certificate.
const (
	// TLSVerifyFull requires TLS, a certificate chain to a trusted root and
	// the upstream's host name in it.
	TLSVerifyFull TLSMode = "verify-full"
	// TLSRequire requires TLS and a chain to a trusted root, like libpq's
	// verify-ca: the host name is not checked (for servers reached by an
	// address their certificate does not name).
	TLSRequire TLSMode = "require"
	// TLSDisable speaks plain TCP. The password still never crosses the
	// wire (SCRAM), but the session's data does.
	TLSDisable TLSMode = "disable"
)

// TemporaryRoles configures a role per agent task, created with the
// database's credentials as administrator.
type TemporaryRoles struct {
	// TTL is how long a role lives (VALID UNTIL now + TTL, and never past
	// the task's token); it is dropped when it expires.
	TTL time.Duration
	// Grants are the privileges the role gets, and no others.
	Grants []Grant
}

// Grant is one privilege grant of temporary_roles, such as
// "SELECT ON users, orders", parsed into parts that keyhole quotes itself.
type Grant struct {
	// Privileges are upper-case privilege names: SELECT, INSERT, ...
	Privileges []string
	// Object is the kind of object: "TABLE", "SEQUENCE", "SCHEMA",
	// "ALL TABLES IN SCHEMA" or "ALL SEQUENCES IN SCHEMA".
	Object string
	// Names are the objects, each a list of identifier parts (schema,
	// name), folded to lower case as PostgreSQL folds unquoted names.
	Names [][]string
	// Text is the grant as written, for messages.
	Text string
}

// ReadOnly reports whether every privilege of the grant only reads.
func (g Grant) ReadOnly() bool {
	for _, p := range g.Privileges {
		if p != "SELECT" && p != "USAGE" {
			return false
		}
	}
	return true
}

// MayUseDatabase reports whether the agent may use the database handle
// name.
func (a *Agent) MayUseDatabase(name string) bool { return slices.Contains(a.Databases, name) }

// DatabaseNames returns the names of every database handle, sorted.
func (s *Set) DatabaseNames() []string { return sortedKeys(s.Databases) }

// DatabasesAt returns the handles that listen on addr, sorted by name.
func (s *Set) DatabasesAt(addr string) []*Database {
	var out []*Database
	for _, n := range s.DatabaseNames() {
		if d := s.Databases[n]; d.Listen == addr {
			out = append(out, d)
		}
	}
	return out
}

// ListenAddrs returns every distinct listen address of the databases,
// sorted.
func (s *Set) ListenAddrs() []string {
	var out []string
	for _, d := range s.Databases {
		out = append(out, d.Listen)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// String returns the grant as written.
func (g Grant) String() string { return g.Text }

// privilegeNames are the privileges a grant may name.
var privilegeNames = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "USAGE", "ALL"}

// objectKinds are the object clauses a grant may name, longest first.
var objectKinds = []string{"ALL TABLES IN SCHEMA", "ALL SEQUENCES IN SCHEMA", "TABLE", "SEQUENCE", "SCHEMA"}

// ParseGrant parses "PRIV[, PRIV...] ON [KIND] NAME[, NAME...]", where
// KIND is TABLE (the default), SEQUENCE, SCHEMA, ALL TABLES IN SCHEMA or
// ALL SEQUENCES IN SCHEMA, and each NAME is an identifier or
// schema.identifier of letters, digits, '_' and '$'. It accepts nothing
// else (no quoting, no TO clause, no options), so a grant can only ever be
// the privilege it reads as.
func ParseGrant(s string) (Grant, error) {
	g := Grant{Text: s}
	privs, rest, ok := cutWord(s, "ON")
	if !ok {
		return g, errString("want PRIVILEGES ON NAMES, such as \"SELECT ON users, orders\"")
	}
	for _, p := range strings.Split(privs, ",") {
		p = strings.ToUpper(strings.Join(strings.Fields(p), " "))
		if p == "ALL PRIVILEGES" {
			p = "ALL"
		}
		if !slices.Contains(privilegeNames, p) {
			return g, errString("unknown privilege (want " + strings.Join(privilegeNames, ", ") + ")")
		}
		if slices.Contains(g.Privileges, p) {
			return g, errString("privilege " + p + " is named twice")
		}
		g.Privileges = append(g.Privileges, p)
	}
	rest = strings.TrimSpace(rest)
	g.Object = "TABLE"
	upper := strings.ToUpper(strings.Join(strings.Fields(rest), " "))
	for _, k := range objectKinds {
		if strings.HasPrefix(upper, k+" ") {
			g.Object = k
			rest = dropWords(rest, strings.Count(k, " ")+1)
			break
		}
	}
	for _, n := range strings.Split(rest, ",") {
		parts := strings.Split(strings.TrimSpace(n), ".")
		if len(parts) > 2 || strings.Contains(g.Object, "SCHEMA") && len(parts) != 1 {
			return g, errString("a name is identifier or schema.identifier (a schema for SCHEMA grants)")
		}
		for i, p := range parts {
			if !validIdent(p) {
				return g, errString("not a plain identifier (letters, digits, '_' and '$', not starting with a digit or '$'; at most 63 bytes)")
			}
			parts[i] = strings.ToLower(p)
		}
		g.Names = append(g.Names, parts)
	}
	return g, nil
}

// cutWord splits s around the first whole word w, in any case.
func cutWord(s, w string) (before, after string, ok bool) {
	f := strings.Fields(s)
	for i, x := range f {
		if strings.EqualFold(x, w) && i > 0 && i < len(f)-1 {
			return strings.Join(f[:i], " "), strings.Join(f[i+1:], " "), true
		}
	}
	return "", "", false
}

// dropWords returns s without its first n words.
func dropWords(s string, n int) string { return strings.Join(strings.Fields(s)[n:], " ") }

// validIdent reports whether s is an unquoted PostgreSQL identifier.
func validIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}

type errString string

func (e errString) Error() string { return string(e) }
