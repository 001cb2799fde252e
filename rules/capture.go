package rules

import (
	"fmt"
	"strings"
	"time"
)

// Capture is one rule of the capture section: a response of an upstream
// that mints a credential, whose JSON field becomes a new secret of the
// agent that asked, kept in keyhole's store, the agent getting only its
// placeholder.
type Capture struct {
	// Host is the upstream whose responses are captured.
	Host HostPattern
	// Method is the request's upper-case method; "" matches any.
	Method string
	// Path is the request path the rule matches; nil matches any.
	Path *PathGlob
	// JSON is the dot path of the field in the JSON response body, one
	// element per object key or (all digits) array index.
	JSON []string
	// Name is the new secret's name before its random suffix: NAME_<id>.
	Name string
	// Hosts, Headers, Methods and Paths are the new secret's rule, in the
	// canonical spelling of the rules file; Headers, Methods and Paths
	// are nil for any.
	Hosts, Headers, Methods, Paths []string
	// TTL is how long the captured value stays usable; zero is forever.
	TTL time.Duration
	// Line is the line of the rule in the rules file.
	Line int
}

// MaxCaptureNameLen bounds a capture rule's name, so that NAME_<id> is a
// valid store name.
const MaxCaptureNameLen = 96

// maxJSONPath bounds the elements of a capture rule's json path.
const maxJSONPath = 32

// JSONPath returns the rule's json path as written.
func (c *Capture) JSONPath() string { return strings.Join(c.JSON, ".") }

// captureFields are the fields of a capture rule.
var captureFields = []string{"host", "method", "path", "json", "name", "hosts", "headers", "methods", "paths", "ttl"}

// captures compiles the capture section, a list of rules.
func (l *loader) captures(p pair) {
	items, ok := l.list(p)
	if !ok {
		return
	}
	for _, it := range items {
		if c := l.capture(it); c != nil {
			l.set.Captures = append(l.set.Captures, c)
		}
	}
}

func (l *loader) capture(e pair) *Capture {
	f, ok := l.fields(e.v, e.field, captureFields...)
	if !ok {
		return nil
	}
	c := &Capture{Line: e.v.Line}
	valid := true
	bad := func(q pair, format string, args ...any) {
		l.errorf(q.v.Line, q.field, format, args...)
		valid = false
	}
	need := func(name string) (pair, bool) {
		q, ok := l.required(f, name, e)
		valid = valid && ok
		return q, ok
	}
	if q, ok := need("host"); ok {
		if s, ok := l.str(q); ok {
			if h, err := ParseHostPattern(s); err != nil {
				bad(q, "%v", err)
			} else {
				c.Host = h
			}
		}
	}
	if q, ok := f["method"]; ok {
		if s, ok := l.str(q); ok {
			if m, _, err := parseMethod(s); err != nil {
				bad(q, "%v", err)
			} else {
				c.Method = m
			}
		}
	}
	if q, ok := f["path"]; ok {
		if s, ok := l.str(q); ok {
			if g, err := ParsePathGlob(s); err != nil {
				bad(q, "%v", err)
			} else {
				c.Path = &g
			}
		}
	}
	if q, ok := need("json"); ok {
		if s, ok := l.str(q); ok {
			if path, err := parseJSONPath(s); err != nil {
				bad(q, "%v", err)
			} else {
				c.JSON = path
			}
		}
	}
	if q, ok := need("name"); ok {
		if s, ok := l.str(q); ok {
			switch {
			case !validEnvName(s):
				bad(q, "not a valid secret name (want letters, digits and '_', not starting with a digit)")
			case len(s) > MaxCaptureNameLen:
				bad(q, "at most %d characters (the new secret is NAME_<id>)", MaxCaptureNameLen)
			default:
				c.Name = s
			}
		}
	}
	if q, ok := need("hosts"); ok {
		hosts, _ := parseList(l, q, parseHost)
		l.nonEmpty(q, "the captured secret must name the hosts it may be sent to")
		c.Hosts = patternStrings(hosts)
		valid = valid && len(hosts) > 0
	}
	if q, ok := f["headers"]; ok {
		c.Headers, _ = parseList(l, q, parseHeader)
		l.nonEmpty(q, "omit the field to allow any header")
	}
	if q, ok := f["methods"]; ok {
		c.Methods, _ = parseList(l, q, parseMethod)
		l.nonEmpty(q, "omit the field to allow any method")
	}
	if q, ok := f["paths"]; ok {
		globs, _ := parseList(l, q, parsePath)
		l.nonEmpty(q, "omit the field to allow any path")
		for _, g := range globs {
			c.Paths = append(c.Paths, g.String())
		}
	}
	if q, ok := f["ttl"]; ok {
		if s, ok := l.str(q); ok {
			d, err := time.ParseDuration(s)
			switch {
			case err != nil:
				bad(q, "not a duration such as 720h or 30m")
			case d <= 0:
				bad(q, "must be positive (omit it for no expiry)")
			default:
				c.TTL = d
			}
		}
	}
	if !valid {
		return nil
	}
	return c
}

// parseJSONPath splits a dot path such as "data.keys.0.secret".
func parseJSONPath(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("must name a field, such as secret or data.key")
	}
	parts := strings.Split(s, ".")
	if len(parts) > maxJSONPath {
		return nil, fmt.Errorf("at most %d elements", maxJSONPath)
	}
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("element %d is empty (want a dot path such as data.key)", i+1)
		}
	}
	return parts, nil
}

// patternStrings returns host patterns as the rules file spells them.
func patternStrings(ps []HostPattern) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
