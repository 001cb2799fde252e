// Package rules loads, validates and matches keyhole's rules file.
//
// The rules file is YAML (see the README and ../shared/CONTRACT.md). [Load]
// decodes it strictly: an unknown field, a duplicate name, an empty host list,
// a malformed source, glob or address is an error that names the file, the
// line and the field, and every error in the file is reported at once (see
// [Errors]). YAML anchors, aliases and explicit tags are refused, so that no
// small file expands into a huge one, and the file is bounded in size
// ([MaxFileSize]) and nesting.
//
// A loaded [Set] is compiled and immutable: host patterns, path globs and
// method sets are built once. Loading has two steps: [Parse] decodes and
// validates the file and touches nothing else (no environment, file,
// program or network), then a [Loader] resolves it, reading every source
// (env:, file:, and through its Kinds exec:, vault: and store:) in parallel
// under a bound and a timeout. A value that expires is read again before it
// does ([Loader.Refresh], which the [Watcher] calls), and is never served
// after it. The request path only matches against a Set; it never parses
// configuration or reads a source. Reloading and refreshing build a new Set
// and swap it in whole.
package rules

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"keyhole/secret"
)

// Set is a compiled rules file. A Set is immutable and safe for concurrent
// use; the zero Set has no secrets, no agents and allows egress to the
// scheme's default port of every public address.
type Set struct {
	// File is the path the set was loaded from.
	File string
	// Secrets holds every secret by name.
	Secrets map[string]*Secret
	// Agents holds every agent by name; it is empty when the file has no
	// agents section, and then every client is the anonymous agent.
	Agents map[string]*Agent
	// Egress decides which hosts that no secret names may be reached.
	Egress Egress
	// Resolve pins host names to addresses.
	Resolve []Pin
	// Vault is the vault section, which vault: sources need; nil when the
	// file has none.
	Vault *VaultConfig
	// Databases holds every PostgreSQL handle by name (see Database).
	Databases map[string]*Database
	// Captures are the capture rules, in file order (see Capture).
	Captures []*Capture
	// Handoff is the handoff section; nil when the file has none.
	Handoff *Handoff
	// Warnings are problems that do not stop the rules from loading, such as
	// a secret whose source cannot be read yet. They never hold a value.
	Warnings []string

	// admitted holds the allow entries and every secret's hosts, for
	// CheckEgress. A Set built by hand has none, which fails closed.
	admitted hostTable
	// stamps are the rules file and file: sources as Load found them, for
	// Watcher.
	stamps map[string]fileStamp
	// refresh is when the first value that expires (or failed) should be
	// read again; zero when none.
	refresh time.Time
	// data is the rules file as parsed, pending its sources, and readings
	// their outcomes by reference, for Loader.Refresh.
	data     []byte
	pending  []pendingRead
	readings map[string]*reading
}

// compile derives the set's lookup tables; Load calls it once.
func (s *Set) compile() {
	s.admitted = hostTable{}
	for _, p := range s.Egress.Allow {
		s.admitted.add(p)
	}
	for _, sec := range s.Secrets {
		for _, p := range sec.Hosts {
			s.admitted.add(p)
		}
	}
}

// AnonymousAgent is the agent name of every client when the rules file has no
// agents section.
const AnonymousAgent = "anonymous"

// Secret is one credential and where it may be sent.
type Secret struct {
	// Name is the secret's name, as used in its placeholder <<Name>>.
	Name string
	// Kind says how the credential is produced; the zero value is
	// KindStatic.
	Kind CredentialKind
	// Source says where the value comes from (static secrets only).
	Source Source
	// Hosts lists where the secret may be sent; never empty.
	Hosts []HostPattern
	// Headers lists the canonical names of the request headers that may
	// carry the secret; nil means any header.
	Headers []string
	// Methods lists the upper-case methods the secret may be sent with; nil
	// means any method.
	Methods []string
	// Paths lists globs the URL path must match; nil means any path.
	Paths []PathGlob
	// AllowPlaintext permits sending the secret over plain http://.
	AllowPlaintext bool
	// Env is the name of the environment variable that `keyhole env` sets to
	// the placeholder; it defaults to Name.
	Env string
	// Line is the line of the secret's name in the rules file.
	Line int
	// OAuth2, GitHubApp and AWS configure the kind of the same name; only
	// the secret's own kind's is set.
	OAuth2    *OAuth2
	GitHubApp *GitHubApp
	AWS       *AWS
	// Owner is the only agent that may use a secret from keyhole's store
	// (a captured or taken-in value, see StoredSecret); "" for a secret of
	// the rules file, which agents' secrets lists grant.
	Owner string
	// Origin is OriginCaptured or OriginIntake for a secret from keyhole's
	// store; "" for a secret of the rules file.
	Origin string

	value   secret.Value
	err     error     // why the value could not be read; nil when it was
	expires time.Time // when value stops being valid; zero: never
}

// Value returns the secret's value as last read, or the error that
// prevented reading it. A value past its expiry is an error: keyhole serves
// a value only while it lives. The error names the source, never a value.
func (s *Secret) Value() (secret.Value, error) {
	if s.err == nil && expired(s.expires) {
		return secret.Value{}, fmt.Errorf("%s: the value expired at %s and could not be read again", s.Source, s.expires.UTC().Format(time.RFC3339))
	}
	return s.value, s.err
}

// Expires returns when the secret's value stops being valid; the zero time
// means it does not expire.
func (s *Secret) Expires() time.Time { return s.expires }

// Placeholder returns the secret's placeholder, "<<NAME>>".
func (s *Secret) Placeholder() string { return "<<" + s.Name + ">>" }

// AllowsHost reports whether the secret may be sent to host on port.
func (s *Secret) AllowsHost(host string, port, defaultPort int) bool {
	for _, p := range s.Hosts {
		if p.Match(host, port, defaultPort) {
			return true
		}
	}
	return false
}

// AllowsHeader reports whether the secret may travel in the header named
// name, in any case.
func (s *Secret) AllowsHeader(name string) bool {
	// Names from an http.Header are canonical already: try them as they are
	// before paying for canonicalization.
	return s.Headers == nil || slices.Contains(s.Headers, name) ||
		slices.Contains(s.Headers, http.CanonicalHeaderKey(name))
}

// AllowsMethod reports whether the secret may be sent with method.
func (s *Secret) AllowsMethod(method string) bool {
	return s.Methods == nil || slices.Contains(s.Methods, method)
}

// AllowsPath reports whether the secret may be sent to the URL path p.
func (s *Secret) AllowsPath(p string) bool {
	if s.Paths == nil {
		return true
	}
	for _, g := range s.Paths {
		if g.Match(p) {
			return true
		}
	}
	return false
}

// HostList returns the secret's host patterns as written, for messages.
func (s *Secret) HostList() []string {
	out := make([]string, len(s.Hosts))
	for i, h := range s.Hosts {
		out[i] = h.String()
	}
	return out
}

// Agent is a named client of the proxy and the secrets it may use.
type Agent struct {
	// Name is the user name the agent sends in Proxy-Authorization.
	Name string
	// Token says where the agent's static token comes from.
	Token Source
	// Secrets lists the names of the secrets the agent may use.
	Secrets []string
	// Databases lists the database handles the agent may use.
	Databases []string
	// Budgets are the agent's rate limits, in file order; nil when it has
	// none.
	Budgets []Budget
	// Share and Intake are the agent's hand-off policies; nil allows none.
	Share  *SharePolicy
	Intake *IntakePolicy
	// Line is the line of the agent's name in the rules file.
	Line int

	token   secret.Value
	err     error
	expires time.Time
}

// MayUse reports whether the agent may use the secret named name.
func (a *Agent) MayUse(name string) bool { return slices.Contains(a.Secrets, name) }

// CheckToken reports, in constant time, whether tok is the agent's static
// token. It is false when the token's source could not be read.
func (a *Agent) CheckToken(tok string) bool {
	if a.err != nil || a.token.IsZero() || expired(a.expires) {
		return false
	}
	return a.token.Equal(tok)
}

// TokenValue returns the agent's static token as last read, or the error
// that prevented reading it (also once the token has expired).
func (a *Agent) TokenValue() (secret.Value, error) {
	if a.err == nil && expired(a.expires) {
		return secret.Value{}, fmt.Errorf("%s: the token expired and could not be read again", a.Token)
	}
	return a.token, a.err
}

// Egress decides which destinations that no secret names may be reached.
type Egress struct {
	// DefaultDeny refuses hosts that no secret and no Allow entry names.
	DefaultDeny bool
	// Allow lists hosts that may always be reached.
	Allow []HostPattern
	// Deny lists hosts that are always refused, even when named elsewhere.
	Deny []HostPattern
	// AllowPrivate turns off the refusal of loopback, private, link-local,
	// CGNAT, ULA, multicast and unspecified addresses. The rules file's
	// block_private is its negation, true by default.
	AllowPrivate bool
}

// EgressVerdict is the outcome of an egress check.
type EgressVerdict int

const (
	// EgressAllowed means the destination may be reached.
	EgressAllowed EgressVerdict = iota
	// EgressDenied means a deny entry names the destination.
	EgressDenied
	// EgressNotAllowed means no secret or allow entry names the destination
	// and the default is deny.
	EgressNotAllowed
)

// CheckEgress decides whether host on port may be reached. host must be
// canonical (see CanonicalHost); defaultPort is the port of the request's
// scheme. A deny entry wins over everything; then an allow entry or any
// secret's host admits the destination; otherwise the default decides, and a
// default of allow admits only defaultPort and ports that a pin names.
// Addresses are not its business: block_private applies where the proxy
// dials.
func (s *Set) CheckEgress(host string, port, defaultPort int) EgressVerdict {
	for _, p := range s.Egress.Deny {
		if p.Match(host, port, defaultPort) {
			return EgressDenied
		}
	}
	if s.admitted.match(host, port, defaultPort) {
		return EgressAllowed
	}
	if s.Egress.DefaultDeny {
		return EgressNotAllowed
	}
	if port != defaultPort && !s.pinsPort(host, port) {
		// A default of allow opens the scheme's own port only; other ports
		// must be named by a secret, an allow entry or a pin.
		return EgressNotAllowed
	}
	return EgressAllowed
}

// pinsPort reports whether a pin names host together with this very port.
func (s *Set) pinsPort(host string, port int) bool {
	for _, p := range s.Resolve {
		if p.Port == port && p.Host == host {
			return true
		}
	}
	return false
}

// Pin sends connections for a host to a fixed address, like curl --resolve.
type Pin struct {
	// Host is the canonical host name pinned.
	Host string
	// Port restricts the pin to one request port; 0 pins every port.
	Port int
	// Addr is the address to dial.
	Addr netip.Addr
	// AddrPort is the port to dial; 0 keeps the request's port.
	AddrPort int
	// Line is the line of the pin in the rules file.
	Line int
}

// Matches reports whether the pin applies to host on port.
func (p Pin) Matches(host string, port int) bool {
	return p.Host == host && (p.Port == 0 || p.Port == port)
}

// Target returns the address to dial for a request to port.
func (p Pin) Target(port int) netip.AddrPort {
	if p.AddrPort != 0 {
		port = p.AddrPort
	}
	return netip.AddrPortFrom(p.Addr, uint16(port))
}

// LookupPin returns the pin for host on port; a pin for the exact port wins
// over one for every port.
func (s *Set) LookupPin(host string, port int) (Pin, bool) {
	var found Pin
	ok := false
	for _, p := range s.Resolve {
		if !p.Matches(host, port) {
			continue
		}
		if p.Port != 0 {
			return p, true
		}
		found, ok = p, true
	}
	return found, ok
}

// HasAgents reports whether the rules file has an agents section, so that
// every client must authenticate.
func (s *Set) HasAgents() bool { return len(s.Agents) > 0 }
