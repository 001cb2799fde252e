package rules

import (
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The handoff section and the agents' share and intake fields (CONTRACT.md
// Part 2, "Handing credentials to humans, and taking them from humans").
// The section is decoded before agents, so that an agent naming an unknown
// recipient is an error at its list item.

// Bounds of the handoff section.
const (
	// DefaultMaxTTL is max_ttl when the section leaves it out.
	DefaultMaxTTL = 24 * time.Hour
	// MaxMaxTTL bounds max_ttl: a link is a task's hand-off, not a standing
	// credential.
	MaxMaxTTL = 7 * 24 * time.Hour
	// MaxRecipients bounds the recipients of the section.
	MaxRecipients = 256
)

// Handoff is the handoff section: the listener serving the pages humans
// open and the recipients links are delivered to.
type Handoff struct {
	// Listen is the listener's address, host:port.
	Listen string
	// BaseURL starts every link (https://, no trailing slash).
	BaseURL string
	// CertFile and KeyFile are the listener's certificate and key; both
	// empty means a leaf of keyhole's CA for BaseURL's host.
	CertFile, KeyFile string
	// Recipients holds every recipient by name.
	Recipients map[string]*Recipient
	// MaxTTL bounds a share's or intake's expiry; DefaultMaxTTL when the
	// file leaves it out.
	MaxTTL time.Duration
	// Line is the line of the section in the rules file.
	Line int

	named map[string]bool // recipient names, valid or not
}

// Recipient is a human links may be delivered to.
type Recipient struct {
	// Name is the recipient's name in the rules file.
	Name string
	// Webhook is the https:// URL keyhole POSTs the link to. It may hold a
	// capability in its path (as chat webhooks do): it is never logged.
	Webhook string
	// Line is the line of the recipient's name.
	Line int
}

// SharePolicy is an agent's share field: which secrets it may hand to whom.
type SharePolicy struct {
	// Secrets are name globs ("*" any run, "?" one character).
	Secrets []string `yaml:"secrets"`
	// To names the recipients.
	To []string `yaml:"to"`
}

// AllowsSecret reports whether the policy lets the agent share the secret
// named name (the agent must also be allowed to use it). A nil policy
// allows nothing.
func (p *SharePolicy) AllowsSecret(name string) bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.Secrets, func(g string) bool { return globMatch(g, name) })
}

// AllowsRecipient reports whether the policy lets the agent share with the
// recipient named to. A nil policy allows nothing.
func (p *SharePolicy) AllowsRecipient(to string) bool {
	return p != nil && slices.Contains(p.To, to)
}

// IntakePolicy is an agent's intake field: whom it may ask for a secret.
type IntakePolicy struct {
	// From names the recipients.
	From []string `yaml:"from"`
}

// AllowsRecipient reports whether the agent may ask the recipient named
// from. A nil policy allows nothing.
func (p *IntakePolicy) AllowsRecipient(from string) bool {
	return p != nil && slices.Contains(p.From, from)
}

func (l *loader) handoff(p pair) {
	f, ok := l.fields(p.v, p.field, "listen", "base_url", "cert_file", "key_file", "recipients", "max_ttl")
	if !ok {
		return
	}
	h := &Handoff{Line: p.k.Line, MaxTTL: DefaultMaxTTL, Recipients: map[string]*Recipient{}, named: map[string]bool{}}
	l.set.Handoff = h // set even when invalid: agents then get no second error
	if q, ok := l.required(f, "listen", p); ok {
		if s, ok := l.str(q); ok {
			if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
				l.errorf(q.v.Line, q.field, "want host:port, such as 0.0.0.0:8443")
			} else {
				h.Listen = s
			}
		}
	}
	if q, ok := l.required(f, "base_url", p); ok {
		if s := l.httpsURL(q); s != "" {
			h.BaseURL = strings.TrimRight(s, "/")
		}
	}
	cert, hasCert := f["cert_file"]
	key, hasKey := f["key_file"]
	switch {
	case hasCert && hasKey:
		h.CertFile, h.KeyFile = l.path(cert), l.path(key)
	case hasCert:
		l.errorf(cert.k.Line, p.field+".key_file", "is required with cert_file")
	case hasKey:
		l.errorf(key.k.Line, p.field+".cert_file", "is required with key_file")
	}
	if q, ok := f["max_ttl"]; ok {
		if s, ok := l.str(q); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				l.errorf(q.v.Line, q.field, "not a duration (want e.g. 24h or 30m)")
			case d <= 0 || d > MaxMaxTTL:
				l.errorf(q.v.Line, q.field, "must be more than 0 and at most %s", MaxMaxTTL)
			default:
				h.MaxTTL = d
			}
		}
	}
	if q, ok := l.required(f, "recipients", p); ok {
		l.recipients(q, h)
	}
}

func (l *loader) recipients(p pair, h *Handoff) {
	pairs, ok := l.mapping(p.v, p.field)
	if !ok {
		return
	}
	if len(pairs) == 0 {
		l.errorf(p.v.Line, p.field, "must name at least one recipient")
	}
	if len(pairs) > MaxRecipients {
		l.errorf(p.v.Line, p.field, "names more than %d recipients", MaxRecipients)
		return
	}
	for _, e := range pairs {
		h.named[e.key] = true
		valid := validAgentName(e.key)
		if !valid {
			l.errorf(e.k.Line, e.field, "not a valid recipient name (want at most 64 letters, digits, '.', '_' and '-', starting with a letter or digit)")
		}
		f, ok := l.fields(e.v, e.field, "webhook")
		if !ok {
			continue
		}
		r := &Recipient{Name: e.key, Line: e.k.Line}
		if q, ok := l.required(f, "webhook", e); ok {
			r.Webhook = l.httpsURL(q)
		}
		if valid && r.Webhook != "" {
			h.Recipients[r.Name] = r
		}
	}
}

// path returns the file name p.v, relative to the rules file's directory.
func (l *loader) path(p pair) string {
	s, ok := l.str(p)
	if !ok {
		return ""
	}
	if s == "" {
		l.errorf(p.v.Line, p.field, "must not be empty")
		return ""
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(l.dir, s)
	}
	return s
}

// share decodes an agent's share field.
func (l *loader) share(p pair) *SharePolicy {
	f, ok := l.fields(p.v, p.field, "secrets", "to")
	if !ok {
		return nil
	}
	l.needHandoff(p)
	sp := &SharePolicy{}
	for _, name := range []string{"secrets", "to"} {
		if _, ok := f[name]; !ok {
			l.errorf(p.k.Line, p.field+"."+name, "is required")
		}
	}
	if q, ok := f["secrets"]; ok {
		sp.Secrets, _ = parseList(l, q, parseNameGlob)
		l.nonEmpty(q, "name the secrets the agent may share, such as STRIPE_KEY_*")
	}
	if q, ok := f["to"]; ok {
		sp.To = l.recipientList(q)
	}
	return sp
}

// intake decodes an agent's intake field.
func (l *loader) intake(p pair) *IntakePolicy {
	f, ok := l.fields(p.v, p.field, "from")
	if !ok {
		return nil
	}
	l.needHandoff(p)
	ip := &IntakePolicy{}
	if q, ok := l.required(f, "from", p); ok {
		ip.From = l.recipientList(q)
	}
	return ip
}

func (l *loader) needHandoff(p pair) {
	if l.set.Handoff == nil {
		l.errorf(p.k.Line, p.field, "needs a handoff section (which names the recipients)")
	}
}

func (l *loader) recipientList(p pair) []string {
	out, _ := parseList(l, p, func(s string) (string, string, error) {
		h := l.set.Handoff
		switch {
		case h == nil:
			return s, s, nil // reported by needHandoff
		case h.named[s]:
			return s, s, nil // reported at the recipient if invalid
		case validAgentName(s):
			return "", "", errors.New("recipient " + s + " is not defined in handoff.recipients")
		default:
			return "", "", errors.New("not the name of a recipient defined in handoff.recipients")
		}
	})
	l.nonEmpty(p, "name at least one recipient of handoff.recipients")
	return out
}

// parseNameGlob parses a glob of secret names: letters, digits, '_', '*'
// and '?'.
func parseNameGlob(s string) (string, string, error) {
	if s == "" || len(s) > 128 || strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '*' || r == '?')
	}) {
		return "", "", errors.New("not a glob of secret names (want letters, digits, '_', '*' and '?', such as STRIPE_KEY_*)")
	}
	return s, s, nil
}
