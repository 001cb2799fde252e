package inject

import (
	"net/http"
	"strings"

	"keyhole/rules"
)

// maxNameInMessage bounds how much of an unknown placeholder name a refusal
// repeats.
const maxNameInMessage = 64

// check decides whether the secret called name may travel in header of the
// target request, and returns its value.
func (a *applier) check(name, header string) (string, *Refusal) {
	t := a.target
	sec := a.set.Secrets[name]
	if sec == nil {
		shown := shorten(name)
		return "", Refuse(UnknownSecret, shown, t.Host,
			"no secret named %s exists; a placeholder must name a secret in the rules file", shown)
	}
	if sec.Owner != "" {
		// A captured or taken-in value: its owner's only, whatever the
		// agents' lists say.
		if a.caller.Agent != sec.Owner {
			return "", Refuse(AgentNotAllowed, name, t.Host,
				"secret %s belongs to another agent; agent %s may not use it", name, a.caller.Agent)
		}
	} else if r := a.caller.Rule; r != nil && !r.MayUse(name) {
		return "", Refuse(AgentNotAllowed, name, t.Host,
			"agent %s may not use secret %s", a.caller.Agent, name)
	}
	if tok := a.caller.Token; tok != nil && !tok.AllowsSecret(name) {
		return "", Refuse(AgentNotAllowed, name, t.Host,
			"the token of agent %s does not allow secret %s", a.caller.Agent, name)
	}
	if !sec.AllowsHost(t.Host, t.Port, t.DefaultPort()) {
		return "", Refuse(HostNotAllowed, name, t.Host,
			"secret %s may only be sent to %s, not %s", name, list(sec.HostList()), t.HostPort())
	}
	if !sec.AllowsHeader(header) {
		return "", Refuse(HeaderNotAllowed, name, t.Host,
			"secret %s may only be sent in the %s header, not in %s", name, list(sec.Headers), header)
	}
	// Case-insensitively: a server that upper-cases methods would echo a
	// "trace" request too.
	if strings.EqualFold(t.Method, "TRACE") || strings.EqualFold(t.Method, "TRACK") {
		return "", Refuse(MethodNotAllowed, name, t.Host,
			"secret %s is never sent with %s, which echoes the request back", name, t.Method)
	}
	if !sec.AllowsMethod(t.Method) {
		return "", Refuse(MethodNotAllowed, name, t.Host,
			"secret %s may only be sent with %s, not %s", name, list(sec.Methods), t.Method)
	}
	if ref := checkOverride(sec, name, t.Host, a.header); ref != nil {
		return "", ref
	}
	if sec.Paths != nil {
		if !canonicalPath(t.Path, t.EscapedPath) {
			return "", Refuse(PathNotAllowed, name, t.Host,
				"secret %s may not be sent to a path with dot segments, empty segments, backslashes or encoded slashes", name)
		}
		if !sec.AllowsPath(t.Path) {
			return "", Refuse(PathNotAllowed, name, t.Host,
				"secret %s may only be sent to paths %s, not %s", name, list(globs(sec.Paths)), t.Path)
		}
	}
	if t.Scheme != "https" && !sec.AllowPlaintext {
		return "", Refuse(PlaintextNotAllowed, name, t.Host,
			"secret %s may only be sent over https; use https://%s", name, t.HostPort())
	}
	if sec.Kind.Minted() {
		// Minting is network I/O, which is no business of Apply: the
		// placeholder stays until Finish or a signer replaces it.
		a.minted = append(a.minted, name)
		return "<<" + name + ">>", nil
	}
	v, err := sec.Value()
	if err != nil {
		return "", Refuse(SecretUnavailable, name, t.Host,
			"secret %s is unavailable right now: its source could not be read; the operator's log says why", name)
	}
	return v.Reveal(), nil
}

// methodOverrideHeaders are the headers frameworks (Rails, Laravel,
// Express's method-override, ASP.NET, Google APIs) read as the request's
// real method, in canonical form.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// checkOverride refuses a secret limited by methods, or any secret when an
// override names TRACE or TRACK, on a request whose method-override header
// names a method the secret may not be sent with: the upstream may act on
// the override rather than on the request line the rule was checked
// against. Every value and every comma-separated element counts.
func checkOverride(sec *rules.Secret, name, host string, h http.Header) *Refusal {
	for _, hn := range methodOverrideHeaders {
		for _, v := range h[hn] {
			for m := range strings.SplitSeq(v, ",") {
				m = strings.ToUpper(strings.TrimSpace(m))
				if m == "" {
					continue
				}
				if m == "TRACE" || m == "TRACK" {
					return Refuse(MethodNotAllowed, name, host,
						"secret %s is never sent with a %s header naming %s, which echoes the request back", name, hn, m)
				}
				if !sec.AllowsMethod(m) {
					return Refuse(MethodNotAllowed, name, host,
						"secret %s may only be sent with %s; the %s header asks for %s", name, list(sec.Methods), hn, shownMethod(m))
				}
			}
		}
	}
	return nil
}

// shownMethod returns m when it is a standard method, else a fixed word:
// a refusal never repeats arbitrary bytes of a header.
func shownMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT":
		return m
	}
	return "another method"
}

// shorten bounds what a refusal repeats of a name the agent wrote.
func shorten(s string) string {
	if len(s) > maxNameInMessage {
		return s[:maxNameInMessage] + "..."
	}
	return s
}

func globs(gs []rules.PathGlob) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.String()
	}
	return out
}

// canonicalPath reports whether a path means the same to every server: no
// "." or ".." segments, no empty segments, no backslashes, and no encoded
// slash, backslash or dot that a server might decode before routing.
func canonicalPath(p, escaped string) bool {
	if p == "*" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.Contains(p, "//") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		// Servers such as Tomcat drop a ";parameter" before resolving dot
		// segments, so "/v1/..;/admin" reaches /admin.
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return false
		}
	}
	lower := strings.ToLower(escaped)
	return !strings.Contains(lower, "%2f") && !strings.Contains(lower, "%5c") && !strings.Contains(lower, "%2e")
}
