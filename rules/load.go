package rules

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"keyhole/secret"
)

// Load reads, validates and compiles the rules file at path, and reads every
// source it names with the zero Loader (env: and file: sources). A file
// larger than MaxFileSize is refused.
//
// When the file is invalid, the error is an Errors listing every problem at
// once, each as "FILE:LINE: FIELD: message", and the Set is nil. A source
// that cannot be read (an unset variable, a missing file, a value with
// control characters) does not fail the load: the secret's Value, or the
// agent's TokenValue, returns the reason, and Set.Warnings says it.
func Load(path string) (*Set, error) { return (&Loader{}).Load(context.Background(), path, nil) }

// Parse decodes, validates and compiles the contents data of the rules file
// at path, and reads nothing: no environment, file, program or network. The
// path names the file in messages, and relative file: sources are taken
// relative to its directory. The secrets and tokens of the Set it returns
// have no values yet (each reports that its source was not read); Load and
// Loader.Load parse and then read every source.
func Parse(path string, data []byte) (*Set, error) {
	l := &loader{file: path, dir: filepath.Dir(path), set: &Set{File: path}, lines: countLines(data)}
	if root := l.decode(data); root != nil && l.scan(root) {
		l.root(root)
	}
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, byLine)
		return nil, l.errs
	}
	l.set.pending = l.reads
	l.set.data = data
	l.set.compile()
	return l.set, nil
}

func byLine(a, b *Error) int { return cmp.Compare(a.Line, b.Line) }

// loader holds the state of one Parse.
type loader struct {
	file  string
	dir   string
	lines int // in the file, for keeping error lines within it
	set   *Set
	errs  Errors
	reads []pendingRead

	dbDefined map[string]bool // database handles, valid or not
}

// pendingRead is a source to read once the whole file proved valid. store
// receives the outcome; expire, when set, receives the time the value stops
// being valid (zero: never).
type pendingRead struct {
	field  string
	line   int
	src    Source
	store  func(secret.Value, error)
	expire func(time.Time)
	check  func(secret.Value) error // nil, or checks the value once read (see rawSource)
}

func (l *loader) errorf(line int, field, format string, args ...any) {
	l.errs = append(l.errs, l.newError(line, field, format, args...))
}

// newError makes an Error that prints as one line within the file: yaml.v3
// puts an implicit empty value at the end of input on the line after it,
// and a message must not break the "FILE:LINE: message" form.
func (l *loader) newError(line int, field, format string, args ...any) *Error {
	msg := strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(fmt.Sprintf(format, args...))
	return &Error{File: l.file, Line: max(1, min(line, l.lines)), Field: field, Msg: msg}
}

func (l *loader) root(n *yaml.Node) {
	f, ok := l.fields(n, "", "secrets", "agents", "egress", "resolve", "vault", "databases", "capture", "handoff")
	if !ok {
		return
	}
	if p, ok := f["vault"]; ok {
		l.vault(p)
	}
	defer l.bindVault()
	defined := map[string]bool{}
	if p, ok := f["secrets"]; ok {
		defined = l.secrets(p)
	}
	if p, ok := f["databases"]; ok {
		l.databases(p) // before agents, which name its handles
	}
	if p, ok := f["handoff"]; ok {
		l.handoff(p) // before agents, which name its recipients
	}
	if p, ok := f["agents"]; ok {
		l.agents(p, defined)
	}
	if p, ok := f["egress"]; ok {
		l.egress(p)
	}
	if p, ok := f["resolve"]; ok {
		l.resolve(p)
	}
	if p, ok := f["capture"]; ok {
		l.captures(p)
	}
}

// secrets compiles the secrets section and returns every name it defines,
// valid or not, so that agents naming a broken secret get no second error.
func (l *loader) secrets(p pair) map[string]bool {
	pairs, _ := l.mapping(p.v, p.field)
	defined := make(map[string]bool, len(pairs))
	l.set.Secrets = make(map[string]*Secret, len(pairs))
	envs := make(map[string]string, len(pairs)) // env name → secret field
	for _, e := range pairs {
		defined[e.key] = true
		valid := validEnvName(e.key)
		if !valid {
			l.errorf(e.k.Line, e.field, "not a valid secret name (want letters, digits and '_', not starting with a digit)")
		}
		s := l.secret(e)
		if s == nil || !valid {
			continue
		}
		if prev, dup := envs[s.Env]; dup {
			l.errorf(s.envLine, e.field+".env", "environment variable %s is already used by %s", s.Env, prev)
		}
		envs[s.Env] = e.field
		l.set.Secrets[s.Name] = s.Secret
	}
	return defined
}

// parsedSecret is a Secret with the line of its env name, for messages.
type parsedSecret struct {
	*Secret
	envLine int
}

func (l *loader) secret(e pair) *parsedSecret {
	f, ok := l.fields(e.v, e.field, secretFields(e.v)...)
	if !ok {
		return nil
	}
	s := &Secret{Name: e.key, Env: e.key, Line: e.k.Line, err: errNotRead}
	out := &parsedSecret{Secret: s, envLine: e.k.Line}
	if l.secretKind(f, e, s); s.Kind == KindStatic {
		if p, ok := l.required(f, "source", e); ok {
			s.Source = l.source(p, func(v secret.Value, err error) { s.value, s.err = v, err })
			if s.Source != nil {
				l.reads[len(l.reads)-1].expire = func(t time.Time) { s.expires = t }
			}
		}
	}
	if p, ok := l.required(f, "hosts", e); ok {
		s.Hosts, _ = parseList(l, p, parseHost)
		l.nonEmpty(p, "a secret must name the hosts it may be sent to")
	}
	if p, ok := f["headers"]; ok {
		s.Headers, _ = parseList(l, p, parseHeader)
		l.nonEmpty(p, "omit the field to allow any header")
	}
	if p, ok := f["methods"]; ok {
		s.Methods, _ = parseList(l, p, parseMethod)
		l.nonEmpty(p, "omit the field to allow any method")
	}
	if p, ok := f["paths"]; ok {
		s.Paths, _ = parseList(l, p, parsePath)
		l.nonEmpty(p, "omit the field to allow any path")
	}
	if p, ok := f["allow_plaintext"]; ok {
		s.AllowPlaintext, _ = l.boolean(p)
	}
	if p, ok := f["env"]; ok {
		if name, ok := l.str(p); ok {
			if validEnvName(name) {
				s.Env, out.envLine = name, p.v.Line
			} else {
				l.errorf(p.v.Line, p.field, "%s is not a valid environment variable name", brief(name))
			}
		}
	}
	return out
}

// required returns the field name of the entry e, reporting its absence.
func (l *loader) required(f map[string]pair, name string, e pair) (pair, bool) {
	p, ok := f[name]
	if !ok {
		l.errorf(e.k.Line, e.field+"."+name, "is required")
	}
	return p, ok
}

// nonEmpty reports an empty list p.v, with a hint.
func (l *loader) nonEmpty(p pair, hint string) {
	if p.v.Kind == yaml.SequenceNode && len(p.v.Content) == 0 {
		l.errorf(p.v.Line, p.field, "must not be empty (%s)", hint)
	}
}

// source parses the source reference p.v and queues it to be read, with
// store receiving the outcome.
func (l *loader) source(p pair, store func(secret.Value, error)) Source {
	ref, ok := l.str(p)
	if !ok {
		return nil
	}
	src, err := ParseSource(ref, l.dir)
	if err != nil {
		l.errorf(p.v.Line, p.field, "%v", err)
		return nil
	}
	l.reads = append(l.reads, pendingRead{field: p.field, line: p.v.Line, src: src, store: store})
	return src
}

func (l *loader) agents(p pair, defined map[string]bool) {
	pairs, ok := l.mapping(p.v, p.field)
	if !ok {
		return
	}
	if len(p.v.Content) == 0 {
		l.errorf(p.v.Line, p.field, "must name at least one agent (remove the section to let every client in as %q)", AnonymousAgent)
		return
	}
	l.set.Agents = make(map[string]*Agent, len(pairs))
	for _, e := range pairs {
		valid := validAgentName(e.key)
		switch {
		case !valid:
			l.errorf(e.k.Line, e.field, "not a valid agent name (want at most 64 letters, digits, '.', '_' and '-', starting with a letter or digit)")
		case e.key == AnonymousAgent:
			valid = false
			l.errorf(e.k.Line, e.field, "the name %q is reserved for clients when there is no agents section", AnonymousAgent)
		}
		if a := l.agent(e, defined); a != nil && valid {
			l.set.Agents[a.Name] = a
		}
	}
}

func (l *loader) agent(e pair, defined map[string]bool) *Agent {
	f, ok := l.fields(e.v, e.field, "token", "secrets", "databases", "share", "intake", "budgets")
	if !ok {
		return nil
	}
	a := &Agent{Name: e.key, Line: e.k.Line, Secrets: []string{}, err: errNotRead}
	if p, ok := l.required(f, "token", e); ok {
		a.Token = l.source(p, func(v secret.Value, err error) { a.token, a.err = v, err })
		if a.Token != nil {
			l.reads[len(l.reads)-1].expire = func(t time.Time) { a.expires = t }
		}
	}
	if p, ok := f["secrets"]; ok {
		a.Secrets, _ = parseList(l, p, func(s string) (string, string, error) {
			switch {
			case defined[s]:
			case validEnvName(s) && len(s) <= 64:
				return "", "", fmt.Errorf("secret %s is not defined in secrets", s)
			default:
				return "", "", errors.New("not the name of a secret defined in secrets")
			}
			return s, s, nil
		})
	}
	if p, ok := f["databases"]; ok {
		a.Databases = l.agentDatabases(p)
	}
	if p, ok := f["share"]; ok {
		a.Share = l.share(p)
	}
	if p, ok := f["intake"]; ok {
		a.Intake = l.intake(p)
	}
	if p, ok := f["budgets"]; ok {
		a.Budgets = l.budgets(p, a, defined)
	}
	return a
}

func (l *loader) egress(p pair) {
	f, ok := l.fields(p.v, p.field, "default", "allow", "deny", "block_private")
	if !ok {
		return
	}
	eg := &l.set.Egress
	if p, ok := f["default"]; ok {
		if s, ok := l.str(p); ok {
			switch s {
			case "allow":
			case "deny":
				eg.DefaultDeny = true
			default:
				l.errorf(p.v.Line, p.field, "must be allow or deny, got %s", brief(s))
			}
		}
	}
	if p, ok := f["allow"]; ok {
		eg.Allow, _ = parseList(l, p, parseHost)
	}
	if p, ok := f["deny"]; ok {
		eg.Deny, _ = parseList(l, p, parseHost)
	}
	if p, ok := f["block_private"]; ok {
		block, ok := l.boolean(p)
		eg.AllowPrivate = ok && !block
	}
}

func (l *loader) resolve(p pair) {
	pairs, _ := l.mapping(p.v, p.field)
	seen := make(map[string]string, len(pairs)) // host:port → field
	for _, e := range pairs {
		if pin, ok := l.pin(e, seen); ok {
			l.set.Resolve = append(l.set.Resolve, pin)
		}
	}
}

// pin parses one resolve entry; seen holds the pins before it, to find two
// that differ only in spelling (API.stripe.com, api.stripe.com.).
func (l *loader) pin(e pair, seen map[string]string) (Pin, bool) {
	pin := Pin{Line: e.k.Line}
	valid := true
	var err error
	if pin.Host, pin.Port, err = parsePinHost(e.key); err != nil {
		l.errorf(e.k.Line, e.field, "%v", err)
		valid = false
	} else {
		key := net.JoinHostPort(pin.Host, strconv.Itoa(pin.Port))
		if prev, dup := seen[key]; dup {
			l.errorf(e.k.Line, e.field, "pins the same host and port as %s", prev)
			valid = false
		}
		seen[key] = e.field
	}
	s, ok := l.str(e)
	if !ok {
		return pin, false
	}
	if pin.Addr, pin.AddrPort, err = parsePinAddr(s); err != nil {
		l.errorf(e.v.Line, e.field, "%v", err)
		return pin, false
	}
	return pin, valid
}
